"""The one root exception of salewatch and its kinds."""


class SalewatchError(Exception):
    """Root of every error salewatch raises on purpose."""


class ConfigError(SalewatchError):
    """A setting is missing or invalid; the message names the environment variable."""
