"""nodeauthz: the Kubernetes Node authorizer over a persistent, shared SQL graph."""

__version__ = "0.1.0"
