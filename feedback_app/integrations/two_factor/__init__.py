"""django-two-factor-auth: SMS tokens sent through feedback_app, confirmed when verified.

Add ``"feedback_app.integrations.two_factor"`` to ``INSTALLED_APPS`` (after ``two_factor``) and set
``TWO_FACTOR_SMS_GATEWAY = "feedback_app.integrations.two_factor.gateway.Gateway"``; see
docs/otp.md.
"""
