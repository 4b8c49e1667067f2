"""SigV4 as KMS signs XKS requests (spec, Appendix A), done by botocore.

botocore's signer is the one KMS-compatible tools use, so a request it signs
is a request the sidecar must accept; the tests tamper with what it produced
rather than sign by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.http_wire import Headers
from tests.e2e.stack import KeystoreInfo

SERVICE = "kms-xks-proxy"


@dataclass(frozen=True)
class Signer:
    """Signs as KMS does: botocore SigV4, headers ``host;x-amz-date`` only."""

    access_key_id: str
    secret: str = field(repr=False)
    region: str
    service: str = SERVICE

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        body: bytes,
        *,
        when: datetime | None = None,
    ) -> Headers:
        """Headers to send: host, x-amz-date and authorization.

        The request carries no other header while signing, so botocore signs
        exactly ``host;x-amz-date``; Content-Type goes on afterwards, unsigned,
        as KMS sends it.
        """
        request = AWSRequest(
            method=method,
            url=f"https://{host}{path}",
            data=body,
            headers={"host": host},
        )
        auth = SigV4Auth(
            Credentials(self.access_key_id, self.secret), self.service, self.region
        )
        if when is None:
            auth.add_auth(request)
        else:
            # botocore reads the clock in one place; fixing it there is the only
            # way to sign "from another time" with botocore's own code path.
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                auth.add_auth(request)
        return [
            ("Host", host),
            ("X-Amz-Date", request.headers["X-Amz-Date"]),
            ("Authorization", request.headers["Authorization"]),
        ]


def signer_for(keystore: KeystoreInfo, index: int = 0, **changes: Any) -> Signer:
    access_key_id, secret = keystore.credentials[index]
    return replace(Signer(access_key_id, secret, keystore.region), **changes)
