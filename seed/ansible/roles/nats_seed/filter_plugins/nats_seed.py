"""Filters the nats_seed role shares with seedctl, so the two never drift apart.

`q` is the template's quoting filter (seed.render.quote), `nats_seed_restart_changes` is the
reload-or-restart rule (seed.lifecycle.restart_changes) and `nats_seed_template` turns a template
name into its path inside the installed seed package (seed.render.TEMPLATE_DIR), so the role
renders the very file `seedctl render` uses, with no copy or symlink of it in the role. They run
on the Ansible controller, which has the seed package installed (`seedctl deploy` runs
ansible-playbook from the same venv).
"""

from __future__ import annotations

try:
    from seed.lifecycle import restart_changes
    from seed.render import TEMPLATE_DIR, quote

    def template_path(name: str) -> str:
        """The absolute path of one of seed.render's templates (`seedctl render`'s own file)."""
        return str(TEMPLATE_DIR / name)

except ImportError as exc:  # pragma: no cover - only outside the seedctl venv
    _MISSING = exc

    def _missing(*_args, **_kwargs):
        raise RuntimeError(
            f"the nats_seed role needs the seed package on the Ansible controller ({_MISSING}): "
            "run it through `seedctl deploy` or from the venv seedctl is installed in"
        )

    quote = restart_changes = template_path = _missing


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self):
        return {
            "q": quote,
            "nats_seed_restart_changes": restart_changes,
            "nats_seed_template": template_path,
        }
