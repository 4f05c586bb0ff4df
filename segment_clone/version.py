"""The package version, kept in one place for packaging, the User-Agent and context.library."""

VERSION = "0.1.0"
