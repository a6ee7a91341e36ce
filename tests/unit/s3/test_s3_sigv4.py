"""Our SigV4 signer against botocore's, header for header, on the requests the connector sends."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from connectors.s3.auth import EMPTY_SHA256, Keys, key_url, query_string, sign_v4

WHEN = datetime(2026, 12, 7, 15, 4, 5, tzinfo=UTC)
BASE = "http://127.0.0.1:9000/bucket"


class _BotocoreS3(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4 with the path signed as sent (what S3 checks, and what we signed with before)."""

    def _normalize_url_path(self, path: str) -> str:
        return path


def botocore_headers(method: str, url: str, headers: dict[str, str], keys: Keys, region: str) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=headers)
    _BotocoreS3(Credentials(keys.access_key, keys.secret_key, keys.token), "s3", region).add_auth(request)
    return dict(request.headers.items())


REQUESTS = [
    ("GET", key_url(BASE, "a.csv"), {"Range": "bytes=0-16777215", "x-amz-checksum-mode": "ENABLED"}),
    ("GET", key_url(BASE, "dir//odd name+é%/~x.bin"), {"Range": "bytes=16777216-33554431", "If-Match": '"abc"'}),
    ("HEAD", key_url("https://bucket.s3.eu-west-1.amazonaws.com", "k"), {"x-amz-checksum-mode": "ENABLED"}),
    ("GET", f"{BASE}/?{query_string({'list-type': '2', 'prefix': 'a b/é&=', 'max-keys': '1000'})}", {}),
    ("PUT", key_url("https://s3.amazonaws.com:443/b", "k"),
     {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "Content-Length": "0", "If-None-Match": "*",
      "x-amz-meta-sha256": "  spaced   value ", "Content-Type": "text/csv"}),
    ("POST", f"{key_url(BASE, 'big.bin')}?{query_string({'uploadId': 'x/y+z=', 'partNumber': '3'})}",
     {"Content-Type": "application/xml"}),
    ("DELETE", f"{key_url('http://[::1]:8080/b', 'k')}?{query_string({'uploadId': 'u'})}", {}),
]


@pytest.mark.parametrize(("method", "url", "headers"), REQUESTS)
@pytest.mark.parametrize("token", [None, "session/token+="])
def test_our_signature_is_botocores(method: str, url: str, headers: dict[str, str], token: str | None,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN)
    keys = Keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    sent = {**headers, "X-Amz-Content-SHA256": EMPTY_SHA256 if method != "PUT" else "UNSIGNED-PAYLOAD"}
    ours = sign_v4(method, url, sent, keys, "eu-west-1", WHEN)
    assert ours == botocore_headers(method, url, dict(sent), keys, "eu-west-1")


def test_keys_never_show_in_a_repr() -> None:
    assert "wJalr" not in repr(Keys("AKIDEXAMPLE", "wJalrXUtnFEMI", "tok")) and "AKID" not in repr(Keys("AKID", "s"))
