"""`monitor-agent enroll-request`: ask a seed operator to admit this node, sending no secret."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import load_config
from ..errors import ConfigError, FederationError
from ..protocol import REGIONS


@click.command("enroll-request")
@click.option(
    "--region",
    type=click.Choice(REGIONS, case_sensitive=False),
    default=None,
    help="Region shown to peers (default: FEDERATION_REGION, else UNKNOWN).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the request to this file (default: print it).",
)
def command(region: str | None, out: Path | None) -> None:
    """Write this node's enrollment request: public key, nodeId, region, signed by the node key.

    The request holds nothing secret (the node key stays in DATA_DIR/node.key): send it to the
    seed operator, who runs `seedctl enroll approve REQUEST` and sends back a credentials file
    (a user JWT in operator mode, the public key in static mode) to set as FEDERATION_CREDENTIALS.

    \b
    Examples:
      monitor-agent enroll-request --region EU-WEST --out enroll-request.json
    """
    from ..enrollment import RequestError, build_request, dumps
    from ..identity import load_identity

    try:
        config = load_config()
        identity = load_identity(config.data_dir, config.node_id)
        request = build_request(identity, (region or config.region).upper())
    except (ConfigError, FederationError, RequestError) as exc:
        click.echo(f"monitor-agent: {exc}", err=True)
        sys.exit(2)
    text = dumps(request)
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(
        f"wrote {out}: {request['nodeId']} ({request['userKey']}), region {request['region']}; "
        "send it to the seed operator (it holds no secret)"
    )
