"""The Lua ``load_balancer`` module: the master's agent selection, from Lua.

``load_balancer.select_agent{strategy=, criteria={cpu_weight=...}, constraints=
{max_cpu_percent=...}, affinity={tags={...}, region=}, exclude={...}}`` returns the chosen
agent's name and its facts (a table: url, tags, region, status, running, queued, capacity,
metrics), or ``nil`` and why. ``load_balancer.strategies()`` lists the strategy names.

The runtime's ``context["master"]`` says where the master is: a URL string (token from
``SLOTHLAB_TOKEN`` or the token file), a mapping ``{"url": ..., "token": ...}``, or an object
with a ``select(**fields)`` method returning a :class:`~slothlab.protocol.Selection` (the
client's ``Controller``). Without it, ``select_agent`` returns ``nil, "no master configured..."``.

>>> from slothlab.lua import Runtime
>>> Runtime().execute("return load_balancer.select_agent{strategy='random'}")
[None, 'no master configured: start one with `slothlab up` or set master.url']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["LoadBalancerModule"]

NO_MASTER = "no master configured: start one with `slothlab up` or set master.url"
_KNOWN = {"strategy", "criteria", "constraints", "affinity", "tags", "region", "exclude"}


class LoadBalancerModule(LuaModule):
    """``load_balancer.select_agent{...}`` and ``load_balancer.strategies()``."""

    name: ClassVar[str] = "load_balancer"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The module's functions, bound to ``runtime``'s master."""

        def select_agent(spec: Any = None) -> Any:
            return _select(runtime.context.get("master"), _fields(spec))

        def strategies() -> list[str]:
            from slothlab.master.balancer import names

            return names()

        return {"select_agent": select_agent, "strategies": strategies}


def _fields(spec: Any) -> dict[str, Any]:
    """SelectRequest fields from the Lua table (``affinity`` flattened into tags/region)."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError("select_agent takes a table: {strategy=, criteria=, constraints=, ...}")
    unknown = sorted(set(map(str, spec)) - _KNOWN)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    fields = {k: v for k, v in spec.items() if k != "affinity"}
    affinity = spec.get("affinity") or {}
    if not isinstance(affinity, Mapping):
        raise ValueError("affinity must be a table {tags={...}, region=...}")
    if "tags" in affinity:
        fields["tags"] = list(affinity["tags"] or [])
    if affinity.get("region") is not None:
        fields["region"] = affinity["region"]
    for key in ("criteria", "constraints"):
        if isinstance(fields.get(key), list) and not fields[key]:
            fields[key] = {}  # an empty Lua table converts to an empty list
    for key in ("tags", "exclude"):
        if isinstance(fields.get(key), dict) and not fields[key]:
            fields[key] = []
    return fields


def _select(master: Any, fields: dict[str, Any]) -> Any:
    from slothlab.errors import ClientError, MasterError
    from slothlab.protocol import Selection, SelectRequest

    if master is None:
        return None, NO_MASTER
    try:
        request = SelectRequest(**fields)
    except ValueError as exc:
        raise ValueError(_first_error(exc)) from None
    try:
        if hasattr(master, "select"):
            selection = master.select(**request.model_dump())
        else:
            selection = _over_http(master, request)
    except (ClientError, MasterError) as exc:
        return None, str(exc)
    if not isinstance(selection, Selection):
        selection = Selection.model_validate(selection)
    if selection.agent is None:
        return None, selection.reason
    facts = selection.agent.model_dump(exclude={"name"})
    facts["reason"] = selection.reason
    return selection.agent.name, facts


def _over_http(master: Any, request: Any) -> Any:
    import requests

    from slothlab.errors import ClientError

    if isinstance(master, str):
        from slothlab.security import read_token

        url, token = master, read_token() or ""
    else:
        url, token = master["url"], master.get("token") or ""
    url = url.rstrip("/")
    try:
        response = requests.post(
            f"{url}/v1/select",
            json=request.model_dump(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=(2.0, 10.0),
        )
    except requests.RequestException as exc:
        raise ClientError(f"master at {url} did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise ClientError(f"master at {url} answered {response.status_code}: {message}")
    return response.json()


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"bad selection: {where}: {first.get('msg', 'invalid')}"
    return f"bad selection: {exc}"
