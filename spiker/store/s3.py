"""S3Store: the artifact store on any S3-compatible server (MinIO, SeaweedFS, AWS) via the ``minio`` SDK."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name
from urllib3.util import Retry, Timeout

from spiker.store.base import (
    ArtifactRef,
    ArtifactStore,
    ObjectInfo,
    _expires_seconds,
    validate_key,
    validate_prefix,
)
from spiker.store.errors import (
    ArtifactNotFound,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
)

logger = logging.getLogger(__name__)

#: user metadata written on every object (visible in any S3 client as x-amz-meta-*)
META_SHA256 = "x-amz-meta-sha256"
META_KIND = "x-amz-meta-spiker-kind"
READ_CHUNK = 4 * 1024 * 1024

_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                      "RequestTimeTooSkewed"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
               "ExpiredToken", "AllAccessDisabled"}


def parse_endpoint(endpoint: str, secure: bool | None) -> tuple[str, bool]:
    """Split ``endpoint`` into (``host:port``, secure); an http(s):// scheme wins over ``secure``."""
    ep = endpoint.strip()
    if "://" in ep:
        parts = urlsplit(ep)
        if parts.scheme not in ("http", "https"):
            raise StoreConfigError("endpoint", f"scheme must be http or https, got {endpoint!r}")
        if parts.path.strip("/") or parts.query:
            raise StoreConfigError("endpoint", f"must be host[:port] without a path, got {endpoint!r}")
        return parts.netloc, parts.scheme == "https"
    if not ep or "/" in ep:
        raise StoreConfigError("endpoint", f"must be host[:port] or http(s)://host[:port], got {endpoint!r}")
    return ep, True if secure is None else secure


class S3Store(ArtifactStore):
    """Artifacts in an S3 bucket, written and read through the ``minio`` SDK.

    Objects carry user metadata ``sha256`` (hex digest of the content) and ``spiker-kind``.
    Large objects are uploaded as multipart uploads (the SDK splits anything above
    ``part_size``, default 5 MiB parts for objects up to ~48 GiB) and streamed: at most
    ``part_size * parallel_uploads`` bytes are in memory. Network failures, refused
    connections and 5xx answers raise :class:`StoreUnavailable`.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        bucket: str,
        secure: bool | None = None,
        *,
        region: str | None = None,
        cert_check: bool = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        retries: int = 3,
        part_size: int = 0,
        parallel_uploads: int = 3,
        create_bucket: bool = False,
    ) -> None:
        self.endpoint, self.secure = parse_endpoint(endpoint, secure)
        if bool(access_key) != bool(secret_key):
            raise StoreConfigError("credentials", "give both access key and secret key, or neither")
        self.bucket = bucket
        self.part_size = part_size
        self.parallel_uploads = parallel_uploads
        http = urllib3.PoolManager(
            timeout=Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=max(10, parallel_uploads),
            cert_reqs="CERT_REQUIRED" if cert_check else "CERT_NONE",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=Retry(total=retries, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]),
        )
        try:
            self.client = Minio(self.endpoint, access_key=access_key or None, secret_key=secret_key or None,
                                secure=self.secure, region=region, http_client=http, cert_check=cert_check)
        except ValueError as e:
            raise StoreConfigError("endpoint", str(e)) from e
        try:  # checks the name without touching the network
            check_bucket_name(bucket)
        except ValueError as e:
            raise StoreConfigError("bucket", str(e)) from e
        if create_bucket:
            self.ensure_bucket()

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3Store({scheme}://{self.endpoint}, bucket={self.bucket!r})"

    def describe(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"s3 bucket {self.bucket} at {scheme}://{self.endpoint}"

    # ----------------------------------------------------------------- error translation
    @contextlib.contextmanager
    def _translate(self, key: str = "", bucket: str | None = None) -> Iterator[None]:
        bucket = bucket or self.bucket
        try:
            yield
        except StoreError:
            raise
        except S3Error as e:
            code = e.code or ""
            if code == "NoSuchKey":
                raise ArtifactNotFound(key, bucket) from None
            if code == "NoSuchBucket":
                raise StoreConfigError(
                    "bucket", f"bucket {bucket!r} does not exist at {self.endpoint}; create it "
                              "(S3Store(..., create_bucket=True), `mc mb`, `weed mini -bucket=`) "
                              "or set SPIKER_S3_BUCKET") from e
            if code in _AUTH_CODES:
                raise StoreConfigError(
                    "credentials", f"{self.endpoint} rejected the request ({code}: {e.message}); "
                                   "check SPIKER_S3_ACCESS_KEY/SPIKER_S3_SECRET_KEY") from e
            if code in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"S3 store {self.endpoint} is unavailable: {code}: {e.message}") from e
            raise StoreError(f"S3 {bucket}/{key}: {code}: {e.message}") from e
        except ServerError as e:
            raise StoreUnavailable(
                f"S3 store {self.endpoint} answered HTTP {e.status_code}: {e}") from e
        except InvalidResponseError as e:
            raise StoreUnavailable(f"S3 store {self.endpoint} gave an invalid response: {e}") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise StoreUnavailable(
                f"S3 store {'https' if self.secure else 'http'}://{self.endpoint} is unreachable: "
                f"{type(e).__name__}: {e}") from e

    # ----------------------------------------------------------------- primitives
    def _bucket_of(self, ref: ArtifactRef) -> str:
        validate_key(ref.key)
        return self.bucket if ref.is_local else ref.bucket

    def uri_for(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{validate_key(key)}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        with self._translate():
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket)
                logger.info("store: created bucket %s at %s", self.bucket, self.endpoint)
            except S3Error as e:
                if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def _stat(self, key: str) -> ObjectInfo | None:
        with self._translate(key):
            try:
                st = self.client.stat_object(self.bucket, key)
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
                    return None
                raise
        meta = st.metadata or {}
        sha = meta.get(META_SHA256)
        return ObjectInfo(size=int(st.size or 0), sha256=sha.lower() if sha else None)

    def _write(self, key: str, source: BinaryIO, size: int, sha256: str, *, kind: str,
               content_type: str, overwrite: bool) -> None:
        with self._translate(key):
            self.client.put_object(
                self.bucket, key, source, size, content_type=content_type,
                metadata={META_SHA256: sha256, META_KIND: kind},
                part_size=self.part_size, num_parallel_uploads=self.parallel_uploads,
            )

    @contextlib.contextmanager
    def _open_read(self, bucket: str, key: str) -> Iterator[Iterator[bytes]]:
        with self._translate(key, bucket):
            resp = self.client.get_object(bucket, key)
        try:
            yield self._chunks(resp, key, bucket)
        finally:
            resp.close()
            resp.release_conn()

    def _read_all(self, bucket: str, key: str, limit: int) -> bytes:
        with self._translate(key, bucket):
            resp = self.client.get_object(bucket, key)
            try:
                length = int(resp.headers.get("Content-Length", -1))
                # one read into one buffer, as the raw SDK does; never more than limit + 1 bytes
                return resp.read() if 0 <= length <= limit else resp.read(limit + 1)
            finally:
                resp.close()
                resp.release_conn()

    def _chunks(self, resp: urllib3.BaseHTTPResponse, key: str, bucket: str) -> Iterator[bytes]:
        with self._translate(key, bucket):
            while chunk := resp.read(READ_CHUNK):
                yield chunk

    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix`` (recursive, sorted)."""
        validate_prefix(prefix)
        with self._translate(prefix):
            names = [o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix or None,
                                                                      recursive=True)]
        return sorted(n for n in names if n and not n.endswith("/"))

    def _delete(self, key: str) -> bool:
        if self._stat(key) is None:
            return False
        with self._translate(key):
            self.client.remove_object(self.bucket, key)
        return True

    def _modified(self, key: str) -> float | None:
        with self._translate(key):
            try:
                st = self.client.stat_object(self.bucket, key)
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
        return st.last_modified.timestamp() if st.last_modified else None

    def _read_versioned(self, key: str) -> tuple[bytes, str] | None:
        try:
            with self._translate(key):
                resp = self.client.get_object(self.bucket, key)
                try:
                    return resp.read(), str(resp.headers.get("ETag", "")).strip('"')
                finally:
                    resp.close()
                    resp.release_conn()
        except ArtifactNotFound:
            return None

    def _write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        headers = {"If-None-Match": "*"} if version is None else {"If-Match": f'"{version}"'}
        headers.update({META_SHA256: hashlib.sha256(data).hexdigest(), META_KIND: "document",
                        "Content-Type": "application/json"})
        try:
            with self._translate(key):
                # the SDK's public put_object takes no conditional headers; its single-part PUT does
                result = self.client._put_object(self.bucket, key, data, headers)  # noqa: SLF001
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, S3Error) and cause.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise
        return str(result.etag or "").strip('"')

    def presigned_url(self, ref: ArtifactRef, expires: int | float | timedelta = 3600) -> str:
        """A presigned GET URL for ``ref``, valid for ``expires`` (seconds or timedelta, at most 7 days)."""
        td = _expires_seconds(expires)
        bucket = self._bucket_of(ref)
        with self._translate(ref.key, bucket):
            try:
                self.client.stat_object(bucket, ref.key)
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchObject"):
                    raise ArtifactNotFound(ref.key, bucket) from None
                raise
            return self.client.presigned_get_object(bucket, ref.key, expires=td)
