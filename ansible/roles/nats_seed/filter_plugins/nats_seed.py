"""Filters the nats_seed role shares with seedctl, so the two never drift apart.

`q` is the template's quoting filter (seed.render.quote) and `nats_seed_restart_changes` is the
reload-or-restart rule (seed.lifecycle.restart_changes). They run on the Ansible controller, which
has the seed package installed (`seedctl deploy` runs ansible-playbook from the same venv).
"""

from __future__ import annotations

try:
    from seed.lifecycle import restart_changes
    from seed.render import quote
except ImportError as exc:  # pragma: no cover - only outside the seedctl venv
    _MISSING = exc

    def _missing(*_args, **_kwargs):
        raise RuntimeError(
            f"the nats_seed role needs the seed package on the Ansible controller ({_MISSING}): "
            "run it through `seedctl deploy` or from the venv seedctl is installed in"
        )

    quote = restart_changes = _missing


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self):
        return {"q": quote, "nats_seed_restart_changes": restart_changes}
