"""The Alertmanager webhook payload (version 4): shape only.

Unknown fields are ignored (newer Alertmanagers add some). The one annotation the receiver
reads, ``desired_replicas``, is checked here so a bad value is a 400 naming its field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# The alert contract: one place for these names.
LABEL_SERVICE = "service"
LABEL_SCALE = "scale"
LABEL_ALERTNAME = "alertname"  # set by Prometheus: the rule's alert name
ANNOTATION_DESIRED = "desired_replicas"
MAX_DESIRED_REPLICAS = 100_000

_INTEGER = re.compile(r"[0-9]{1,7}")


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("annotations")
    @classmethod
    def _desired_replicas_is_a_count(cls, annotations: dict[str, str]) -> dict[str, str]:
        value = annotations.get(ANNOTATION_DESIRED)
        if value is not None and value.strip():  # empty: the rule's query found nothing; a step
            text = value.strip()
            if not _INTEGER.fullmatch(text) or int(text) > MAX_DESIRED_REPLICAS:
                raise ValueError(
                    f"{ANNOTATION_DESIRED} must be a whole number from 0 to {MAX_DESIRED_REPLICAS}"
                    f" (got {value[:40]!r})"
                )
        return annotations

    @property
    def desired_replicas(self) -> int | None:
        value = self.annotations.get(ANNOTATION_DESIRED, "").strip()
        return int(value) if value else None

    @property
    def name(self) -> str:
        return self.labels.get(LABEL_ALERTNAME, "")


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""


class PayloadError(ValueError):
    """The body is not a valid webhook payload; ``problems`` name each bad field."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))


def parse_payload(body: bytes) -> WebhookPayload:
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False)[:20]:
            field = ".".join(str(p) for p in e["loc"]) or "(body)"
            problems.append({"field": field, "message": e["msg"].removeprefix("Value error, ")})
        raise PayloadError(problems) from None
