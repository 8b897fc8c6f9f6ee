"""The event schema shared by the demo API (request validation) and the consumer (poison detection).

Imports pydantic only; no Kafka, no I/O.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Ids are ledger ids (`producer.seq`) in practice, but any short printable id is accepted.
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"


class Event(BaseModel):
    """One event as the platform accepts it. Unknown top-level fields are rejected so typos surface as 422."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    type: str = Field(pattern=TYPE_PATTERN, max_length=100)
    source: str = Field(min_length=1, max_length=100)
    timestamp: datetime
    schema_version: int = Field(default=1, ge=1, le=1)
    payload: dict[str, Any]


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(max_length=5000)
