"""What went wrong in a Runware call or task, in terms the bot can act on.

`ErrorKind` names the cause, `RunwareError` carries it (with a message for the member), and `classify_error`
sorts Runware's error codes and HTTP statuses into kinds the way Runware's official SDK does.
"""

from __future__ import annotations

import re
from enum import StrEnum

from core.errors import N_

# The secret of a webhook URL's token (core/webhooks.py: .../runware/webhook/<job id>.<secret>), wherever it
# appears in a text: the job number stays readable, the secret goes.
_WEBHOOK_SECRET = re.compile(r"(/runware/webhook/\d+\.)[A-Za-z0-9_\-]+")


def redact_webhook_secrets(text: str) -> str:
    """`text` with the secret of every webhook URL in it replaced by ***."""
    return _WEBHOOK_SECRET.sub(r"\1***", text) if "/runware/webhook/" in text else text


class ErrorKind(StrEnum):
    """What went wrong, in terms the bot can act on."""

    AUTH = "auth"
    FUNDS = "funds"
    PERMISSION = "permission"
    SAFETY = "safety"
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    PROVIDER = "provider"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    CONNECTION = "connection"
    SERVER = "server"
    UNKNOWN = "unknown"


# As in Runware's official SDK (`is_retryable`): sending the same request again may succeed. For a task
# that Runware reported failed, "again" means a new task; the SDK leaves that to its caller, and so does
# this client (the job runner fails and refunds such a job, and the member may run /animate again).
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {ErrorKind.PROVIDER, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMIT, ErrorKind.CONNECTION, ErrorKind.SERVER}
)

# Members don't know the vendor: messages speak of "the video service".
_USER_MESSAGES: dict[ErrorKind, str] = {
    ErrorKind.AUTH: N_(
        "Videos are paused: the bot's video service key was rejected. Please tell a server admin."
    ),
    ErrorKind.FUNDS: N_(
        "Videos are paused: the bot's video service is out of credit. Please tell a server admin."
    ),
    ErrorKind.PERMISSION: N_(
        "Videos are paused: the bot's video service key lacks a permission. Please tell a server admin."
    ),
    ErrorKind.SAFETY: N_("The safety check refused this image or audio. Try a different one."),
    ErrorKind.VALIDATION: N_("The video service did not accept these files. Try a different image or clip."),
    ErrorKind.NOT_FOUND: N_("The video service lost this job. Please run /animate again."),
    ErrorKind.PROVIDER: N_("The video service could not make this video. Please try again later."),
    ErrorKind.TIMEOUT: N_("The video service timed out. Please run /animate again."),
    ErrorKind.RATE_LIMIT: N_("The video service is busy. Please try again in a few minutes."),
    ErrorKind.CONNECTION: N_("The bot could not reach the video service. Please try again later."),
    ErrorKind.SERVER: N_("The video service had a problem. Please try again later."),
    ErrorKind.UNKNOWN: N_("The video service reported an unexpected error. Please try again later."),
}


class RunwareError(Exception):
    """A failed Runware call or task. Never carries the API key (messages are scrubbed by the client)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        task_uuid: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.kind = kind
        self.code = code
        self.message = message
        self.task_uuid = task_uuid
        self.http_status = http_status
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (provider, timeout, connection, rate limit, 5xx)."""
        return self.kind in RETRYABLE_KINDS

    def user_message(self) -> str:
        """One short plain-English sentence for the Discord member."""
        return _USER_MESSAGES[self.kind]

    def __str__(self) -> str:
        parts = [f"[{self.kind}]"]
        if self.code:
            parts.append(f"{self.code}:")
        parts.append(self.message)
        extra = []
        if self.task_uuid:
            extra.append(f"task={self.task_uuid}")
        if self.http_status is not None:
            extra.append(f"http={self.http_status}")
        if extra:
            parts.append(f"({', '.join(extra)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"RunwareError(kind={self.kind.value!r}, code={self.code!r}, message={self.message!r}, "
            f"task_uuid={self.task_uuid!r}, http_status={self.http_status!r})"
        )


def classify_error(code: str | None, http_status: int | None) -> ErrorKind:
    """Map a Runware error code and HTTP status to an ErrorKind.

    Codes are sorted as Runware's official SDK sorts them (see `_kind_for_code`); the HTTP status settles
    account problems (401/402/403) and keeps 429/5xx retryable.
    """
    by_status = _kind_for_status(http_status)
    # The HTTP status is authoritative for account problems, whatever the code says.
    if http_status in (401, 402, 403):
        return by_status
    by_code = _kind_for_code(code)
    if http_status == 429 or (http_status is not None and http_status >= 500):
        # A transient status stays retryable: only a code naming a retryable cause may refine it.
        return by_code if by_code in RETRYABLE_KINDS else by_status
    if by_code is not ErrorKind.UNKNOWN:
        return by_code
    return by_status


def _kind_for_status(http_status: int | None) -> ErrorKind:
    if http_status is None or 200 <= http_status < 300:
        return ErrorKind.UNKNOWN
    table = {
        400: ErrorKind.VALIDATION,
        401: ErrorKind.AUTH,
        402: ErrorKind.FUNDS,
        403: ErrorKind.PERMISSION,
        404: ErrorKind.NOT_FOUND,
        408: ErrorKind.TIMEOUT,
        409: ErrorKind.VALIDATION,
        410: ErrorKind.NOT_FOUND,
        422: ErrorKind.VALIDATION,
        429: ErrorKind.RATE_LIMIT,
    }
    if http_status in table:
        return table[http_status]
    return ErrorKind.SERVER if http_status >= 500 else ErrorKind.UNKNOWN


# Codes as Runware's official Python SDK (`runware-sdk` 1.8.0, `runware/errors.py`, `derive_code`) sorts
# them. Its names are matched case-insensitively here; where the bot differs, the comment says why.
_SAFETY_CODES = frozenset(
    c.lower()
    for c in (
        "contentPolicyViolation",
        "providerContentPolicyViolation",
        "sensitiveContentDetected",
        "unsafeContentDetected",
        "nsfwContentDetected",
        "promptBlocked",
        "imageBlocked",
        "moderationFailed",
        "invalidProviderContent",
    )
)
# The SDK calls all of these "auth"; the bot keeps "the key may not do this" apart as PERMISSION (also final).
_PERMISSION_CODES = frozenset(c.lower() for c in ("forbidden", "permissionDenied", "insufficientPermissions"))
_AUTH_CODES = frozenset(
    c.lower()
    for c in (
        "unauthorized",
        "authenticationFailed",
        "authFailed",
        "authTimeout",
        "invalidAuthentication",
        "invalidCredentials",
        "missingAuthentication",
        "tokenExpired",
        "tokenInvalid",
        "tokenMissing",
        "tokenRevoked",
        "accountSuspended",
        "accountDisabled",
        "organizationSuspended",
        "organizationDisabled",
        "workspaceSuspended",
        "workspaceDisabled",
    )
)
_FUNDS_CODES = frozenset(c.lower() for c in ("quotaExceeded", "paymentRequired", "environmentPaused"))
_SERVER_CODES = frozenset(
    c.lower()
    for c in (
        "internalServerError",
        "serviceUnavailable",
        "serverUnavailable",
        "standardError",
        "unknownError",
        "undefinedError",
        "defaultError",
        "unrecognizedResponse",
        "errorRetrievingAccountManagement",
    )
)
_NOT_FOUND_CODES = frozenset(c.lower() for c in ("taskCancelled", "taskFailedOrNotFound", "unknownModel"))
_PROVIDER_CODES = frozenset(
    c.lower()
    for c in (
        "inferenceError",
        "processingFailed",
        "taskFailed",
        "downloadFailed",
        "uploadFailed",
        "noAvailableServer",
        "modelUnavailable",
        "modelDisabled",
        "modelNotReady",
        "mediaStorageFileCouldNotBeMoved",
    )
)
_VALIDATION_PREFIXES = ("invalid", "missing", "conflict", "duplicate", "unsupported", "value", "array", "max")
_VALIDATION_CODES = frozenset(
    c.lower()
    for c in (
        "unknownParameter",
        "incompatibleParameters",
        "mismatchProviderSettingsProvider",
        "unknownProviderSettingsProvider",
        "transparentModelMismatch",
        "modelOwnershipValidationError",
        "modelAlreadyExists",
        "validationFailed",
    )
)


def _kind_for_code(code: str | None) -> ErrorKind:
    # The SDK's order matters: "providerContentPolicyViolation" is safety before provider, "invalidApiKey"
    # auth before validation, "authTimeout" auth before timeout, "taskFailedOrNotFound" not found.
    if not code:
        return ErrorKind.UNKNOWN
    c = code.lower()
    if any(m in c for m in ("credits", "quota", "balance")) or c in _FUNDS_CODES:
        return ErrorKind.FUNDS
    if "ratelimit" in c:
        return ErrorKind.RATE_LIMIT
    if c in _SAFETY_CODES:
        return ErrorKind.SAFETY
    if c in _PERMISSION_CODES:
        return ErrorKind.PERMISSION
    if c in _AUTH_CODES or "apikey" in c:
        return ErrorKind.AUTH
    # The SDK matches "Timeout" case-sensitively and so misses Runware's documented "timeoutProvider";
    # a timeout is a timeout whatever its case.
    if "timeout" in c:
        return ErrorKind.TIMEOUT
    if c in _NOT_FOUND_CODES or c.endswith(("notfound", "expired")):
        return ErrorKind.NOT_FOUND
    if c in _SERVER_CODES:
        return ErrorKind.SERVER
    if c in _PROVIDER_CODES or c.startswith("provider"):
        return ErrorKind.PROVIDER
    if c.startswith(_VALIDATION_PREFIXES) or "conflict" in c or c in _VALIDATION_CODES:
        return ErrorKind.VALIDATION
    return ErrorKind.UNKNOWN
