"""Independent verification of a draw: from its transcript and the auditors' entry export,
with no Redis and no Guichet state (``guichet draw verify TRANSCRIPT ENTRIES``).

The export formats are plain text so that an auditor can re-check them with any tool:

- entries (``entries.tsv``): one line per entry, ``stratum<TAB>account id``, sorted by id;
- ranking (``ranking.tsv``): one line per entry in rank order, ``rank<TAB>stratum<TAB>id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import msgspec
import numpy as np

from guichet.draw import model, ranking
from guichet.signing import Signer

_TIMES = ("committed_at", "registration_closes_at", "ran_at")


def arrays(entries: Iterable[tuple[str, str]], strata: Sequence[str]) -> ranking.Keyed:
    """(stratum, id) pairs as arrays (not keyed yet: :func:`verify` keys them)."""
    position = {name: i for i, name in enumerate(strata)}
    ids: list[bytes] = []
    places: list[int] = []
    for stratum, entry_id in entries:
        if stratum not in position:
            raise ValueError(f"entry {entry_id!r}: unknown stratum {stratum!r}")
        ids.append(entry_id.encode())
        places.append(position[stratum])
    return ranking.unkeyed(ids, np.array(places, dtype=np.uint8))


def read_entries(path: str | Path, strata: Sequence[str]) -> Iterable[tuple[str, str]]:
    """``stratum<TAB>id`` lines of an entries export."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            stratum, tab, entry_id = line.rstrip("\n").partition("\t")
            if not tab or not entry_id:
                raise ValueError(f"{path}:{number}: expected 'stratum<TAB>id'")
            yield stratum, entry_id


def sign(transcript: model.Transcript, signer: Signer) -> model.Transcript:
    """The transcript with ``signature`` set; ``signer`` is the draw keyring
    (``draws.signing_key_dir``): see :class:`model.Transcript` for what it covers."""
    digest = hashlib.sha256(transcript.unsigned()).hexdigest()
    token = signer.sign({"draw": transcript.draw, "transcript_sha256": digest})
    return msgspec.structs.replace(transcript, signature=token)


def check_signature(transcript: model.Transcript, jwks: dict[str, Any]) -> list[str]:
    """Problems with the transcript's signature against a JWKS document (empty: it holds)."""
    if not transcript.signature:
        return ["the transcript is not signed"]
    try:
        kid = jwt.get_unverified_header(transcript.signature).get("kid")
        keys = {k.get("kid"): k for k in jwks.get("keys", [])}
        if kid not in keys:
            return [f"the signing key {kid!r} is not in the JWKS"]
        key = jwt.PyJWK.from_dict(keys[kid])
        claims = jwt.decode(
            transcript.signature,
            key.key,
            algorithms=["EdDSA"],
            options={"verify_exp": False, "verify_aud": False, "require": []},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        return [f"the signature does not verify: {exc}"]
    if claims.get("transcript_sha256") != hashlib.sha256(transcript.unsigned()).hexdigest():
        return ["the signature covers another transcript: a field was changed"]
    return []


def verify(
    transcript: model.Transcript,
    entries: ranking.Keyed,
    *,
    jwks: dict[str, Any] | None = None,
    ranked_ids: Sequence[str] | None = None,
    commitment: str | None = None,
) -> list[str]:
    """Recompute the draw from ``transcript`` and the exported ``entries`` (stratum positions
    as in ``transcript.strata``); every mismatch found (empty: the draw verifies).
    ``commitment``: the hash published before the close, which the transcript must bring (a
    transcript re-made with another seed and matching digests is caught by it alone)."""
    t = transcript
    if t.formula != model.FORMULA:
        return [f"formula {t.formula!r} is not {model.FORMULA!r}"]
    problems: list[str] = []
    if commitment is not None and not hmac.compare_digest(
        t.commitment.lower().encode(), commitment.lower().encode()
    ):
        problems.append(
            "the transcript's commitment is not the one published before the close: "
            "its seed was not the one committed to"
        )
    if jwks is not None:
        problems += check_signature(t, jwks)
    try:
        seed, beacon = bytes.fromhex(t.seed), bytes.fromhex(t.beacon)
    except ValueError:
        return [*problems, "seed or beacon is not hex"]
    if not model.opens_commitment(seed, t.commitment):
        problems.append("the revealed seed does not match the published commitment")
    try:
        committed, closes, ran = (datetime.fromisoformat(getattr(t, n)) for n in _TIMES)
    except ValueError:
        problems.append("a time is not RFC 3339")
    else:
        if not committed < closes:
            problems.append("the commitment was not made before registration closed")
        if not closes <= ran:
            problems.append("the draw ran before registration closed")
    if len(entries) != t.entries:
        problems.append(f"{len(entries)} entries exported, transcript says {t.entries}")
    counts = np.bincount(entries.strata, minlength=len(t.strata)).tolist()
    if dict(zip(t.strata, counts, strict=False)) != t.entries_by_stratum:
        problems.append("entries by stratum differ from the transcript")
    if ranking.entry_set_digest(entries, t.strata) != t.entry_set_digest:
        problems.append("entry-set digest differs: the exported entries are not the frozen set")
    keyed = ranking.keyed(
        list(entries.ids.tolist()), entries.strata, model.draw_key(t.draw, seed, beacon)
    )
    ranked = keyed.ids[ranking.order(keyed)]
    if ranking.ranking_digest(ranked) != t.ranking_digest:
        problems.append("ranking digest differs: re-running the draw gives another order")
    if ranked_ids is not None and model.ranking_digest(ranked_ids) != t.ranking_digest:
        problems.append("the exported ranking is not the ranking of the transcript")
    return problems


def verify_pairs(
    transcript: model.Transcript, entries: Sequence[tuple[str, str]], **kwargs: Any
) -> list[str]:
    """:func:`verify` for a list of ``(stratum, id)`` pairs."""
    try:
        keyed = arrays(entries, transcript.strata)
    except ValueError as exc:
        return [str(exc)]
    return verify(transcript, keyed, **kwargs)


def load_transcript(path: str | Path) -> model.Transcript:
    return msgspec.json.decode(Path(path).read_bytes(), type=model.Transcript)


def load_jwks(path: str | Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return document
