"""Bad input and attacks: hostile plans, templates, requests and webhooks."""
