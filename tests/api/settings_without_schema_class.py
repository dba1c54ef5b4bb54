"""The test settings of a host that leaves DRF's DEFAULT_SCHEMA_CLASS unset (DRF's own)."""

from tests.settings import *  # noqa: F403
from tests.settings import REST_FRAMEWORK

REST_FRAMEWORK = {
    key: value for key, value in REST_FRAMEWORK.items() if key != "DEFAULT_SCHEMA_CLASS"
}
