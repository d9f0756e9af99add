"""Shared pytest fixtures: ``s3_server`` / ``s3_env`` (a real SeaweedFS S3 on loopback, see s3_server.py)."""

try:  # tests/ as a package
    from .s3_server import s3_env, s3_server  # noqa: F401
except ImportError:  # tests/ as a rootdir-relative directory (pytest's default "prepend" import mode)
    from s3_server import s3_env, s3_server  # noqa: F401
