"""The staff API of the configuration run by staff (`/config`): read every setting and its history,
change one. Changes are role-checked (`CONFIGURATION`), versioned (a stale `expected_version` is a
409), validated (a 422 that says what is wrong) and recorded with the token's subject as `changed_by`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from routing.configuration import InvalidSetting, StaffConfiguration
from schemas.events import ConfigurationSetting
from services import Runtime, get_runtime
from services.auth import PROTECTED, Principal, error_responses, requires
from services.auth.roles import CONFIGURATION, may
from services.configuration import VersionConflict

__all__ = ["configuration_router"]


def get_configuration(runtime: Annotated[Runtime, Depends(get_runtime)]) -> StaffConfiguration:
    return runtime.app_state["configuration"]  # type: ignore[no-any-return]


ConfigurationDep = Annotated[StaffConfiguration, Depends(get_configuration)]
Staff = Annotated[Principal, requires(*may(CONFIGURATION))]

configuration_router = APIRouter(
    prefix="/config",
    tags=["configuration"],
    responses=error_responses(*PROTECTED) | {409: {"description": "`expected_version` is not the setting's current version"}},
)


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int = Field(ge=0, description="The version the change was decided on (0: never set); 409 if stale.")
    reason: str | None = Field(None, max_length=500, description="Why, kept in the history.")


class ClosureDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: date
    name: str = Field(min_length=1, max_length=100)


class ClosuresChange(_Change):
    days: list[ClosureDayIn] = Field(description="Every extra closure day (replaces the list).", max_length=400)


class CertificationsChange(_Change):
    codes: list[str] = Field(description="The certification codes open for exam scheduling (replaces the list).", max_length=100)


class QuotasChange(_Change):
    digital_divide_per_year: int = Field(ge=0, le=100_000)


class RuleSetChange(_Change):
    version: str = Field(min_length=1, max_length=100, description="The rule set to activate.")
    document: dict[str, Any] | None = Field(
        None, description="An uploaded rule set (routing/data/rules.yaml's format); none: the shipped one or one uploaded before."
    )


class RosterChange(_Change):
    workers: list[dict[str, Any]] = Field(
        description="Staff profiles to create or update (routing's worker fields; no e-mail or phone).", max_length=500
    )
    removed: list[str] = Field(default_factory=list, description="Worker ids taken off the roster (set offline).")


@configuration_router.get("", summary="Every setting, its value and version", dependencies=[requires(*may(CONFIGURATION))])
async def read(configuration: ConfigurationDep) -> dict[str, Any]:
    return configuration.current()


@configuration_router.get(
    "/{setting}/history", summary="A setting's changes, latest first", dependencies=[requires(*may(CONFIGURATION))]
)
async def history(configuration: ConfigurationDep, setting: ConfigurationSetting) -> list[dict[str, Any]]:
    return await configuration.history(setting)


async def _change(
    configuration: StaffConfiguration, staff: Principal, setting: ConfigurationSetting, change: _Change
) -> dict[str, Any]:
    value = change.model_dump(mode="json", exclude={"expected_version", "reason"})
    try:
        event = await configuration.change(
            setting, value, expected_version=change.expected_version, changed_by=staff.subject, reason=change.reason
        )
    except VersionConflict as conflict:
        raise HTTPException(409, str(conflict)) from None
    except InvalidSetting as error:
        raise HTTPException(422, str(error)) from None
    return {"setting": setting, "version": event.version, "value": event.value, "changed_at": event.changed_at}


@configuration_router.put("/closures", summary="Set the extra closure days")
async def closures(configuration: ConfigurationDep, staff: Staff, change: ClosuresChange) -> dict[str, Any]:
    return await _change(configuration, staff, "closures", change)


@configuration_router.put("/certifications", summary="Set the certifications open for exams")
async def certifications(configuration: ConfigurationDep, staff: Staff, change: CertificationsChange) -> dict[str, Any]:
    return await _change(configuration, staff, "certifications", change)


@configuration_router.put("/quotas", summary="Set the quotas")
async def quotas(configuration: ConfigurationDep, staff: Staff, change: QuotasChange) -> dict[str, Any]:
    return await _change(configuration, staff, "quotas", change)


@configuration_router.put("/rule-set", summary="Activate a rule set (the shipped one or an uploaded document)")
async def rule_set(configuration: ConfigurationDep, staff: Staff, change: RuleSetChange) -> dict[str, Any]:
    return await _change(configuration, staff, "rule_set", change)


@configuration_router.put("/roster", summary="Create, update or remove workers")
async def roster(configuration: ConfigurationDep, staff: Staff, change: RosterChange) -> dict[str, Any]:
    return await _change(configuration, staff, "roster", change)
