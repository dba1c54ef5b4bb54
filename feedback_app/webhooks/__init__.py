"""Provider webhooks: one module per provider on top of ``base.WebhookView``."""
