"""Pulumi components for mlserve: one concern per module, composed by __main__.py."""
