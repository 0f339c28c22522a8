"""Licence audit along lineage: does a derivative's stated licence honour its base model's?

Three layers:

- **The table** (`LICENCES`, `terms`): what each licence common on the Hub obliges a derivative
  to keep, with the clause that says so. The rules and their sources are written out in
  docs/licences.md; this module is their executable form.
- **The verdict** (`edge_verdict`): base licence → derivative licence is one of
  `same`, `compatible`, `unstated`, `unknown`, `missing`, `conflict` (in rising severity).
- **The batch builder** (`build_licence_audit`): every lineage edge of the graph judged, each
  model's licence chain to its root and its worst verdict, counts per family and per
  publisher. The scheduled job (`analytics.pipeline`) writes the verdicts into the graph
  before publish (`write_licence_verdicts`) and stores the audit (`LicenceAudit.save`); pages
  load it (`LicenceAudit.load`) and call its cheap look-ups.

A model's *primary chain* follows, at each step, its most downloaded parent (ties: the
smaller id); its root is the model's *family root*. Merges with parents in several families
are counted in the family of their primary chain only, so family counts add up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from graph.store import GraphStore, store_or_open

# -- verdicts -------------------------------------------------------------------------------
SAME, COMPATIBLE, UNSTATED, UNKNOWN, MISSING, CONFLICT = (
    "same", "compatible", "unstated", "unknown", "missing", "conflict")
#: verdicts from harmless to worst; a model's verdict is the worst over its parents
VERDICTS: tuple[str, ...] = (SAME, COMPATIBLE, UNSTATED, UNKNOWN, MISSING, CONFLICT)
SEVERITY: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}
VERDICT_MEANING: dict[str, str] = {
    SAME: "the derivative states the same licence as its base",
    COMPATIBLE: "a different licence that keeps every obligation of the base's",
    UNSTATED: "neither the base nor the derivative states a licence",
    UNKNOWN: "cannot be judged: the base states none, or a licence without known terms "
             "(other, unknown, cc) stands where the base has obligations",
    MISSING: "the base states a licence, the derivative states none",
    CONFLICT: "the derivative's licence drops an obligation of the base's (stricter base, "
              "looser child), or the base forbids derivatives",
}

# -- the licence table ----------------------------------------------------------------------
PERMISSIVE, ATTRIBUTION, PUBLIC_DOMAIN = "permissive", "attribution", "public domain"
COPYLEFT, NON_COMMERCIAL, NO_DERIVATIVES = "copyleft", "non-commercial", "no derivatives"
RAIL, MODEL_LICENCE, UNDEFINED = "responsible AI (RAIL)", "model licence", "undefined terms"


@dataclass(frozen=True)
class LicenceTerms:
    """What a licence obliges a derivative to keep.

    commercial: the licence allows commercial use (False: a derivative must forbid it too).
    derivatives: derivatives may be shared at all (False: CC ND).
    share_alike: ids a derivative may be licensed under (copyleft); `share_alike_maybe`:
    ids that are allowed only under a condition the Hub does not record ("or any later
    version") and so give `unknown`.
    flow_down: terms that must go with every derivative ("rail" for every RAIL licence's
    use restrictions; a model licence's own id where a copy of *that* agreement must go
    with derivatives).
    source: the licence and clause the obligations come from.
    """

    id: str
    name: str
    kind: str
    commercial: bool | None = True
    derivatives: bool = True
    share_alike: frozenset[str] | None = None
    share_alike_maybe: frozenset[str] = frozenset()
    flow_down: str | None = None
    source: str = ""

    @property
    def obligations(self) -> bool:
        """Anything beyond keeping the notices: then an unknown child licence can't be judged."""
        return (self.commercial is False or not self.derivatives or self.share_alike is not None
                or self.flow_down is not None or self.kind == UNDEFINED)


def _fs(*ids: str) -> frozenset[str]:
    return frozenset(ids)


def _permissive(lid: str, name: str, source: str, kind: str = PERMISSIVE) -> LicenceTerms:
    return LicenceTerms(lid, name, kind, source=source)


_APACHE = ("Apache-2.0 §4 (Redistribution): keep the licence, NOTICE and change notices; "
           "derivative works may carry 'additional or different license terms'")
_MIT = ("MIT: 'without restriction, including … sublicense', provided 'the above copyright "
        "notice and this permission notice shall be included'")
_BSD = "BSD: redistribution 'with or without modification' if the notice and disclaimer are kept"
_CC_BY = ("CC BY 4.0 §3(a) Attribution and §3(a)(4): the Adapter's License must not prevent "
          "recipients from complying with this licence; no other condition on Adapted Material")
_CC_BY_SA = ("CC BY-SA 4.0 §3(b)(1): the Adapter's License must be a CC licence with the same "
             "License Elements, this version or later, or a BY-SA Compatible License (CC lists "
             "GPLv3 as one, one way)")
_CC_BY_SA3 = ("CC BY-SA 3.0 §4(b): Adaptations only under this licence, a later version with "
              "the same License Elements, or a Creative Commons Compatible License")
_CC_NC = ("CC BY-NC 4.0 §2(a)(1) grants rights 'for NonCommercial purposes only' and §3(a)(4): "
          "the Adapter's License must not let recipients escape that")
_CC_NC_SA = ("CC BY-NC-SA 4.0 §2(a)(1) NonCommercial only, §3(b)(1): Adapted Material under a "
             "licence with the same License Elements (BY-NC-SA), this version or later")
_CC_ND = ("CC BY-ND 4.0 §2(a)(1)(B): 'produce and reproduce, but not Share, Adapted Material' "
          "(no derivative may be shared)")
_GPL3 = ("GPLv3 §5(c): the whole work 'under this License'; §13 allows combining with AGPLv3; "
         "§14 later versions only where the Program says 'or any later version'")
_GPL2 = ("GPLv2 §2(b): derivative works 'licensed as a whole … under the terms of this License'; "
         "§9: a later version only if the Program says 'or any later version'")
_AGPL = ("AGPLv3 §5(c): the whole work under this License; §13 Remote Network Interaction must "
         "be kept")
_LGPL21 = ("LGPL-2.1 §2(c) modified library under this License; §3 you may apply the GPL "
           "instead; §13 later versions only if 'or any later version'")
_LGPL3 = ("LGPL-3.0 = GPLv3 plus additional permissions (LGPLv3 §0); GPLv3 §7 lets you remove "
          "additional permissions, so GPLv3 is also allowed")
_RAIL = ("OpenRAIL-M family, paragraph 4(a): the use-based restrictions of paragraph 5 "
         "(Attachment A) 'MUST be included as an enforceable provision … in any type of legal "
         "agreement (e.g. a license) governing the use and/or distribution of the Model or "
         "Derivatives'; 4(b): give recipients a copy of this License")
_LLAMA2 = ("Llama 2 Community License §1.b.i: with any derivative works 'provide a copy of this "
           "Agreement'; §1.b.iv Acceptable Use Policy; §2 Additional Commercial Terms")
_LLAMA3 = ("Meta Llama 3 Community License §1.b.i: (A) provide a copy of this Agreement with "
           "derivative works, (B) 'Built with Meta Llama 3', and 'Llama 3' at the beginning of a "
           "derived model's name; §1.b.iv Acceptable Use Policy")
_LLAMA3X = ("Llama 3.x Community License §1.b.i: provide a copy of this Agreement with "
            "derivative works, 'Built with Llama', 'Llama' at the beginning of the model name; "
            "§1.b.iv Acceptable Use Policy")
_GEMMA = ("Gemma Terms of Use §3.1 (Distribution and Redistribution): include the use "
          "restrictions of §3.2 as an enforceable provision in the agreement governing Model "
          "Derivatives and provide recipients a copy of this Agreement")
_MRL = ("Mistral AI Research License: use, modification and distribution for Research Purposes "
        "only (no commercial use), Derivatives distributed with a copy of this Agreement")
_DEEPFLOYD = ("DeepFloyd IF License Agreement: non-commercial research use; modifications and "
              "derivatives distributed under this Agreement's use restrictions")

LICENCES: dict[str, LicenceTerms] = {t.id: t for t in [
    # public domain and permissive: a derivative may carry any licence (keep the notice)
    _permissive("cc0-1.0", "CC0 1.0", "CC0 1.0 §2 Waiver: all rights waived", PUBLIC_DOMAIN),
    _permissive("unlicense", "The Unlicense", "The Unlicense: dedicated to the public domain",
                PUBLIC_DOMAIN),
    _permissive("pddl", "ODC PDDL", "ODC PDDL §3: public domain dedication", PUBLIC_DOMAIN),
    _permissive("wtfpl", "WTFPL", "WTFPL §0: 'You just DO WHAT THE FUCK YOU WANT TO'",
                PUBLIC_DOMAIN),
    _permissive("apache-2.0", "Apache 2.0", _APACHE),
    _permissive("mit", "MIT", _MIT),
    _permissive("bsd", "BSD", _BSD),
    _permissive("bsd-2-clause", "BSD 2-clause", _BSD),
    _permissive("bsd-3-clause", "BSD 3-clause", _BSD + "; clause 3: no endorsement"),
    _permissive("bsd-3-clause-clear", "BSD 3-clause Clear", _BSD + "; no patent grant"),
    _permissive("isc", "ISC", "ISC: use, copy, modify and distribute with the notice"),
    _permissive("zlib", "zlib", "zlib §2: altered versions must be plainly marked as such"),
    _permissive("bsl-1.0", "Boost 1.0", "BSL-1.0: copies must include the licence text"),
    _permissive("afl-3.0", "AFL 3.0", "AFL-3.0 §1(c): Derivative Works may be distributed "
                "'under any license'; §6 keep notices"),
    _permissive("artistic-2.0", "Artistic 2.0", "Artistic-2.0 §4: Modified Versions may be "
                "distributed if renamed or made freely available"),
    _permissive("ecl-2.0", "ECL 2.0", "ECL-2.0 = Apache-2.0 §4 with a patent change"),
    _permissive("postgresql", "PostgreSQL", "PostgreSQL Licence: use, copy, modify, distribute"),
    _permissive("ncsa", "NCSA", "NCSA: BSD-style, keep the notices"),
    _permissive("apple-ascl", "Apple Sample Code", "Apple Sample Code License: use, modify, "
                "redistribute with the notice"),
    _permissive("lppl-1.3c", "LPPL 1.3c", "LPPL-1.3c §6: a modified work must not be "
                "distributed under the original name"),
    _permissive("etalab-2.0", "Etalab 2.0", "Licence Ouverte 2.0: reuse freely with attribution",
                ATTRIBUTION),
    _permissive("cdla-permissive-1.0", "CDLA Permissive 1.0", "CDLA-Permissive-1.0 §3: Results "
                "are not restricted", ATTRIBUTION),
    _permissive("cdla-permissive-2.0", "CDLA Permissive 2.0", "CDLA-Permissive-2.0 §2.2: no "
                "restriction on Results", ATTRIBUTION),
    _permissive("odc-by", "ODC-By", "ODC-By §4.2: attribution on derivative databases",
                ATTRIBUTION),
    *[_permissive(f"cc-by-{v}", f"CC BY {v}", _CC_BY, ATTRIBUTION)
      for v in ("2.0", "2.5", "3.0", "4.0")],
    # copyleft: a derivative must use the same licence (or one the clause lists)
    LicenceTerms("cc-by-sa-3.0", "CC BY-SA 3.0", COPYLEFT,
                 share_alike=_fs("cc-by-sa-3.0", "cc-by-sa-4.0"), source=_CC_BY_SA3),
    LicenceTerms("cc-by-sa-4.0", "CC BY-SA 4.0", COPYLEFT,
                 share_alike=_fs("cc-by-sa-4.0", "gpl-3.0"), source=_CC_BY_SA),
    LicenceTerms("gpl", "GPL (version not stated)", COPYLEFT, share_alike=_fs("gpl"),
                 share_alike_maybe=_fs("gpl-2.0", "gpl-3.0", "agpl-3.0"),
                 source=_GPL3 + "; the Hub id names no version"),
    LicenceTerms("gpl-2.0", "GPL 2.0", COPYLEFT, share_alike=_fs("gpl-2.0"),
                 share_alike_maybe=_fs("gpl-3.0", "gpl", "agpl-3.0"), source=_GPL2),
    LicenceTerms("gpl-3.0", "GPL 3.0", COPYLEFT, share_alike=_fs("gpl-3.0", "agpl-3.0"),
                 share_alike_maybe=_fs("gpl"), source=_GPL3),
    LicenceTerms("agpl-3.0", "AGPL 3.0", COPYLEFT, share_alike=_fs("agpl-3.0"), source=_AGPL),
    LicenceTerms("lgpl", "LGPL (version not stated)", COPYLEFT, share_alike=_fs("lgpl"),
                 share_alike_maybe=_fs("lgpl-2.1", "lgpl-3.0", "lgpl-lr", "gpl", "gpl-2.0",
                                       "gpl-3.0"), source=_LGPL21),
    LicenceTerms("lgpl-2.1", "LGPL 2.1", COPYLEFT, share_alike=_fs("lgpl-2.1", "gpl-2.0", "gpl"),
                 share_alike_maybe=_fs("lgpl-3.0", "gpl-3.0"), source=_LGPL21),
    LicenceTerms("lgpl-3.0", "LGPL 3.0", COPYLEFT, share_alike=_fs("lgpl-3.0", "gpl-3.0"),
                 source=_LGPL3),
    LicenceTerms("lgpl-lr", "LGPL for Linguistic Resources", COPYLEFT, share_alike=_fs("lgpl-lr"),
                 source="LGPLLR §2: modified resources under this licence"),
    LicenceTerms("mpl-2.0", "MPL 2.0", COPYLEFT, share_alike=_fs("mpl-2.0"),
                 share_alike_maybe=_fs("gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0", "agpl-3.0"),
                 source="MPL-2.0 §3.1: Covered Software in Source Code Form under this License; "
                        "§3.3 Secondary Licenses only for a Larger Work"),
    LicenceTerms("epl-1.0", "EPL 1.0", COPYLEFT, share_alike=_fs("epl-1.0", "epl-2.0"),
                 source="EPL-1.0 §3 distribution under this Agreement; §7 any later version"),
    LicenceTerms("epl-2.0", "EPL 2.0", COPYLEFT, share_alike=_fs("epl-2.0"),
                 source="EPL-2.0 §3.1: Source Code only under this Agreement"),
    LicenceTerms("eupl-1.1", "EUPL 1.1", COPYLEFT,
                 share_alike=_fs("eupl-1.1", "gpl-2.0", "osl-3.0", "epl-1.0"),
                 source="EUPL-1.1 §5 Copyleft and Compatibility clauses (GPLv2, OSL, EPL, …)"),
    LicenceTerms("osl-3.0", "OSL 3.0", COPYLEFT, share_alike=_fs("osl-3.0"),
                 source="OSL-3.0 §1(c): Derivative Works under this licence"),
    LicenceTerms("ms-pl", "Ms-PL", COPYLEFT, share_alike=_fs("ms-pl"),
                 source="Ms-PL §3(D): source form only under this licence"),
    LicenceTerms("gfdl", "GFDL", COPYLEFT, share_alike=_fs("gfdl"),
                 source="GFDL §4 Modifications: 'under precisely this License'"),
    LicenceTerms("odbl", "ODbL", COPYLEFT, share_alike=_fs("odbl"),
                 source="ODbL §4.4 Share alike: Derivative Databases under this licence"),
    LicenceTerms("cdla-sharing-1.0", "CDLA Sharing 1.0", COPYLEFT,
                 share_alike=_fs("cdla-sharing-1.0"),
                 source="CDLA-Sharing-1.0 §3.2: Enhanced Data under this agreement"),
    LicenceTerms("ofl-1.1", "SIL OFL 1.1", COPYLEFT, share_alike=_fs("ofl-1.1"),
                 source="OFL-1.1 condition 5: Modified Versions under this license"),
    # non-commercial / no derivatives
    *[LicenceTerms(f"cc-by-nc-{v}", f"CC BY-NC {v}", NON_COMMERCIAL, commercial=False,
                   source=_CC_NC) for v in ("2.0", "3.0", "4.0")],
    LicenceTerms("cc-by-nc-sa-2.0", "CC BY-NC-SA 2.0", NON_COMMERCIAL, commercial=False,
                 share_alike=_fs("cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0"),
                 source=_CC_NC_SA),
    LicenceTerms("cc-by-nc-sa-3.0", "CC BY-NC-SA 3.0", NON_COMMERCIAL, commercial=False,
                 share_alike=_fs("cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0"), source=_CC_NC_SA),
    LicenceTerms("cc-by-nc-sa-4.0", "CC BY-NC-SA 4.0", NON_COMMERCIAL, commercial=False,
                 share_alike=_fs("cc-by-nc-sa-4.0"), source=_CC_NC_SA),
    LicenceTerms("cc-by-nd-4.0", "CC BY-ND 4.0", NO_DERIVATIVES, derivatives=False,
                 source=_CC_ND),
    *[LicenceTerms(f"cc-by-nc-nd-{v}", f"CC BY-NC-ND {v}", NO_DERIVATIVES, commercial=False,
                   derivatives=False, source=_CC_ND) for v in ("3.0", "4.0")],
    # responsible AI licences: the use restrictions must flow down (any RAIL carries them)
    *[LicenceTerms(lid, name, RAIL, flow_down="rail", source=_RAIL) for lid, name in [
        ("openrail", "OpenRAIL"), ("openrail++", "CreativeML OpenRAIL++-M"),
        ("creativeml-openrail-m", "CreativeML OpenRAIL-M"),
        ("bigscience-openrail-m", "BigScience OpenRAIL-M"),
        ("bigscience-bloom-rail-1.0", "BigScience BLOOM RAIL 1.0"),
        ("bigcode-openrail-m", "BigCode OpenRAIL-M")]],
    # model licences: a copy of that very agreement goes with every derivative
    LicenceTerms("llama2", "Llama 2 Community", MODEL_LICENCE, flow_down="llama2", source=_LLAMA2),
    LicenceTerms("llama3", "Meta Llama 3 Community", MODEL_LICENCE, flow_down="llama3",
                 source=_LLAMA3),
    *[LicenceTerms(f"llama3.{v}", f"Llama 3.{v} Community", MODEL_LICENCE,
                   flow_down=f"llama3.{v}", source=_LLAMA3X) for v in (1, 2, 3)],
    LicenceTerms("gemma", "Gemma Terms of Use", MODEL_LICENCE, flow_down="gemma", source=_GEMMA),
    LicenceTerms("mrl", "Mistral AI Research License", MODEL_LICENCE, commercial=False,
                 flow_down="mrl", source=_MRL),
    LicenceTerms("deepfloyd-if-license", "DeepFloyd IF License", MODEL_LICENCE, commercial=False,
                 flow_down="deepfloyd-if-license", source=_DEEPFLOYD),
    # ids that say nothing about terms
    *[LicenceTerms(lid, name, UNDEFINED, commercial=None, source=src) for lid, name, src in [
        ("other", "other", "the Hub's id for a licence outside its list; the terms are in the "
                           "card (Mistral Research, Qwen, Stability community licences…)"),
        ("unknown", "unknown", "the author says the licence is unknown"),
        ("cc", "Creative Commons (unspecified)", "which CC licence is not said"),
        ("c-uda", "C-UDA", "Computational Use of Data Agreement: data-use terms, not a "
                           "licence for derived models")]],
]}

#: spellings seen in cards for ids of the table
ALIASES: dict[str, str] = {
    "apache 2.0": "apache-2.0", "apache2": "apache-2.0", "apache-2": "apache-2.0",
    "llama-2": "llama2", "llama 2": "llama2", "llama-3": "llama3", "llama 3": "llama3",
    "llama-3.1": "llama3.1", "llama-3.2": "llama3.2", "llama-3.3": "llama3.3",
    "mistral-research": "mrl", "mistral research license": "mrl", "mistral-ai-research": "mrl",
    "openrail-m": "openrail", "creativeml-openrail": "creativeml-openrail-m",
    "cc-by-nc": "cc-by-nc-4.0", "cc-by-sa": "cc-by-sa-4.0", "cc-by": "cc-by-4.0",
    "gpl-3": "gpl-3.0", "gplv3": "gpl-3.0", "gpl-2": "gpl-2.0", "agpl": "agpl-3.0",
}


def normalise(licence: object) -> str | None:
    """The table's id for a stated licence (lower-cased, aliases resolved), None if none."""
    if licence is None or (isinstance(licence, float) and np.isnan(licence)):
        return None
    text = str(licence).strip().lower()
    if not text or text in ("none", "nan"):
        return None
    return ALIASES.get(text, text)


def terms(licence: object) -> LicenceTerms | None:
    """The terms of a stated licence; an id the table does not know has undefined terms."""
    lid = normalise(licence)
    if lid is None:
        return None
    return LICENCES.get(lid) or LicenceTerms(lid, lid, UNDEFINED, commercial=None,
                                             source="not in the licence table")


@dataclass(frozen=True)
class EdgeVerdict:
    verdict: str
    reason: str


def edge_verdict(base: object, child: object) -> EdgeVerdict:
    """Judge a derivative's stated licence against its base model's (see VERDICT_MEANING)."""
    b, c = normalise(base), normalise(child)
    if b is None and c is None:
        return EdgeVerdict(UNSTATED, "neither states a licence")
    if c is None:
        return EdgeVerdict(MISSING, f"base is {b}, the derivative states no licence")
    if b is None:
        return EdgeVerdict(UNKNOWN, "the base states no licence")
    tb, tc = terms(b), terms(c)
    if not tb.derivatives:
        return EdgeVerdict(CONFLICT, f"{b} allows no shared derivatives ({tb.source})")
    if b == c:
        return EdgeVerdict(SAME, "")
    if tb.kind == UNDEFINED:
        return EdgeVerdict(UNKNOWN, f"the terms of {b} are not known")
    if not tb.obligations:
        return EdgeVerdict(COMPATIBLE, f"{b} lets derivatives carry other terms ({tb.source})")
    if tc.kind == UNDEFINED:
        return EdgeVerdict(UNKNOWN, f"{b} has obligations; whether {c} keeps them is not known")
    problems = []
    if tb.commercial is False and tc.commercial is not False:
        problems.append(f"{b} is non-commercial, {c} allows commercial use")
    if tb.share_alike is not None and c not in tb.share_alike:
        if c in tb.share_alike_maybe:
            return EdgeVerdict(UNKNOWN, f"{b} → {c} only if the base allows later versions")
        problems.append(f"{b} requires derivatives under "
                        f"{' / '.join(sorted(tb.share_alike))}")
    if tb.flow_down is not None and tc.flow_down != tb.flow_down:
        what = "use restrictions" if tb.flow_down == "rail" else "agreement"
        problems.append(f"{b}'s {what} must go with derivatives, {c} does not carry them")
    if problems:
        return EdgeVerdict(CONFLICT, "; ".join(problems) + f" ({tb.source})")
    return EdgeVerdict(COMPATIBLE, f"{c} keeps the obligations of {b}")


def table_licences() -> list[str]:
    """The licence ids of the table, in its order."""
    return list(LICENCES)


def compatibility_table(licences: Iterable[str] | None = None, *,
                        with_none: bool = True) -> pd.DataFrame:
    """Verdict for every base (rows) × derivative (columns) licence; '(none)' = not stated."""
    ids = list(licences) if licences is not None else table_licences()
    cols = ids + (["(none)"] if with_none else [])
    rows = ids + (["(none)"] if with_none else [])
    data = {c: [edge_verdict(None if r == "(none)" else r, None if c == "(none)" else c).verdict
                for r in rows] for c in cols}
    return pd.DataFrame(data, index=pd.Index(rows, name="base \\ derivative"))


def licence_rules() -> pd.DataFrame:
    """The table as rows: id, name, kind, commercial, derivatives, share_alike, flow_down,
    source (for the page and docs/licences.md)."""
    return pd.DataFrame([{
        "id": t.id, "name": t.name, "kind": t.kind,
        "commercial": {True: "yes", False: "no", None: "?"}[t.commercial],
        "derivatives": "yes" if t.derivatives else "no",
        "share_alike": ", ".join(sorted(t.share_alike)) if t.share_alike else "",
        "flow_down": t.flow_down or "", "source": t.source} for t in LICENCES.values()])


# -- the batch builder ----------------------------------------------------------------------
@dataclass
class LicenceAudit:
    """Every lineage edge and model judged. Frames (all plain columns, parquet-safe):

    edges: child, parent, relation, child_author, parent_author, parent_licence, licence,
        verdict, reason, primary (the edge is on the child's primary chain).
    models: every model with a parent: id, author, licence, downloads, verdict (worst over
        its parents), parent (primary), depth (on the primary chain), root, root_licence,
        chain (licences up the primary chain, 'a ← b ← c'), chain_verdict (the worst
        verdict of any model on that chain, this one included),
        inheritors (models below it whose primary chain passes through it).
    families: one row per root with descendants: root, root_author, root_licence, models,
        one column per verdict, conflict_share, worst (up to 5 worst offenders).
    publishers: one row per author of a derivative or a root: author, derivatives
        (their models with a parent), one column per verdict over those, family_models
        (models in families rooted at their models) and family_conflicts.
    """

    edges: pd.DataFrame
    models: pd.DataFrame
    families: pd.DataFrame
    publishers: pd.DataFrame
    meta: dict = field(default_factory=dict)

    FILES = ("edges", "models", "families", "publishers")

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.FILES:
            getattr(self, name).to_parquet(folder / f"licence_{name}.parquet", index=False)
        (folder / "licence_meta.json").write_text(json.dumps(self.meta, indent=2, default=str))

    @classmethod
    def load(cls, folder: Path | str) -> "LicenceAudit":
        folder = Path(folder)
        frames = {n: pd.read_parquet(folder / f"licence_{n}.parquet") for n in cls.FILES}
        meta = json.loads((folder / "licence_meta.json").read_text())
        return cls(**frames, meta=meta)

    # -- cheap page-time look-ups ---------------------------------------------------------
    def verdict_counts(self) -> pd.DataFrame:
        """Models and edges per verdict over the whole graph: verdict, models, edges, meaning."""
        m = self.models["verdict"].value_counts()
        e = self.edges["verdict"].value_counts()
        return pd.DataFrame({"verdict": list(VERDICTS),
                             "models": [int(m.get(v, 0)) for v in VERDICTS],
                             "edges": [int(e.get(v, 0)) for v in VERDICTS],
                             "meaning": [VERDICT_MEANING[v] for v in VERDICTS]})

    def transitions(self, verdict: str | None = CONFLICT, limit: int = 20) -> pd.DataFrame:
        """The commonest base licence → derivative licence pairs (of one verdict): parent_licence,
        licence, verdict, edges."""
        e = self.edges if verdict is None else self.edges[self.edges["verdict"] == verdict]
        if e.empty:
            return pd.DataFrame(columns=["parent_licence", "licence", "verdict", "edges"])
        g = (e.fillna({"parent_licence": "(none)", "licence": "(none)"})
             .groupby(["parent_licence", "licence", "verdict"]).size().rename("edges")
             .reset_index().sort_values("edges", ascending=False))
        return g.head(limit).reset_index(drop=True)

    def top_families(self, limit: int = 50, by: str = CONFLICT) -> pd.DataFrame:
        return self.families.sort_values([by, "models"], ascending=False).head(limit) \
            .reset_index(drop=True)

    def top_publishers(self, limit: int = 50, by: str = CONFLICT) -> pd.DataFrame:
        return self.publishers.sort_values([by, "derivatives"], ascending=False).head(limit) \
            .reset_index(drop=True)

    def model(self, model_id: str) -> dict | None:
        """One model's row (verdict, chain, root…) or None when it has no parent."""
        rows = self.models[self.models["id"] == model_id]
        return rows.iloc[0].to_dict() if len(rows) else None

    def parent_edges(self, model_id: str) -> pd.DataFrame:
        """The judged edges from a model to each of its parents."""
        return self.edges[self.edges["child"] == model_id].reset_index(drop=True)

    def family(self, root: str) -> pd.DataFrame:
        """Every model of the family rooted at `root`, worst verdict first."""
        f = self.models[self.models["root"] == root]
        return _by_severity(f)

    def offenders(self, root: str | None = None, author: str | None = None,
                  limit: int = 50) -> pd.DataFrame:
        """Conflicting models (of one family and/or by one author), those whose conflict the
        most models inherit first, then the most downloaded."""
        f = self.models[self.models["verdict"] == CONFLICT]
        if root is not None:
            f = f[f["root"] == root]
        if author is not None:
            f = f[f["author"] == author]
        return f.sort_values(["inheritors", "downloads", "id"], ascending=[False, False, True]) \
            .head(limit).reset_index(drop=True)

    def in_families_of(self, author: str) -> pd.DataFrame:
        """Models in families rooted at `author`'s models that are not `same`/`compatible`,
        worst first (the licence problems in their families)."""
        f = self.models[(self.models["root_author"] == author)
                        & ~self.models["verdict"].isin([SAME, COMPATIBLE])]
        return _by_severity(f)

    def subtree_counts(self, model_ids: Iterable[str]) -> pd.DataFrame:
        """Verdict counts among the given models (e.g. one model's descendants)."""
        f = self.models[self.models["id"].isin(list(model_ids))]
        counts = f["verdict"].value_counts()
        return pd.DataFrame({"verdict": list(VERDICTS),
                             "models": [int(counts.get(v, 0)) for v in VERDICTS]})


def _by_severity(f: pd.DataFrame) -> pd.DataFrame:
    order = f["verdict"].map(SEVERITY)
    f = f.assign(_s=order).sort_values(["_s", "downloads", "id"], ascending=[False, False, True])
    return f.drop(columns="_s").reset_index(drop=True)


def _author_of(ids: pd.Series, authors: pd.Series) -> pd.Series:
    """The stated author, else the namespace of the id (stub parents have no author)."""
    out = authors.astype(object)
    gap = (out.isna() | (out == "")).to_numpy()
    if gap.any():
        ns = [i.split("/", 1)[0] if "/" in i else None for i in ids[gap]]
        out = out.copy()
        out[gap] = ns
    return out


def audit_edges(edges: pd.DataFrame) -> LicenceAudit:
    """The audit from a lineage edge frame (`graph.views_queries.lineage_edges_with_models`):
    child, child_author, child_licence, child_downloads, parent, parent_author,
    parent_licence, parent_downloads, relation. Pure; `build_licence_audit` runs the query."""
    e = edges.copy()
    e["child_author"] = _author_of(e["child"], e["child_author"])
    e["parent_author"] = _author_of(e["parent"], e["parent_author"])
    pairs = e[["parent_licence", "child_licence"]].astype(object).where(
        e[["parent_licence", "child_licence"]].notna(), None)
    cache: dict[tuple, EdgeVerdict] = {}
    verdicts, reasons = [], []
    for b, c in zip(pairs["parent_licence"], pairs["child_licence"]):
        v = cache.get((b, c))
        if v is None:
            v = cache[(b, c)] = edge_verdict(b, c)
        verdicts.append(v.verdict)
        reasons.append(v.reason)
    e["verdict"], e["reason"] = verdicts, reasons
    e["code"] = e["verdict"].map(SEVERITY).astype(np.int8)

    # primary parent: the most downloaded parent, ties by id
    e["_pd"] = pd.to_numeric(e["parent_downloads"], errors="coerce").fillna(-1)
    e = e.sort_values(["child", "_pd", "parent"], ascending=[True, False, True], kind="stable")
    e["primary"] = ~e.duplicated("child")
    prim = e[e["primary"]]

    # every model that appears, with its own attributes
    kids = e.drop_duplicates("child")[["child", "child_author", "child_licence",
                                       "child_downloads"]]
    kids.columns = ["id", "author", "licence", "downloads"]
    pars = e.drop_duplicates("parent")[["parent", "parent_author", "parent_licence",
                                        "parent_downloads"]]
    pars.columns = ["id", "author", "licence", "downloads"]
    known = set(kids["id"])
    only_parents = pars[[i not in known for i in pars["id"]]]
    nodes = pd.concat([kids, only_parents], ignore_index=True)
    idx = {m: i for i, m in enumerate(nodes["id"])}
    n = len(nodes)
    parent = np.full(n, -1, dtype=np.int64)
    ci = prim["child"].map(idx).to_numpy(dtype=np.int64)
    parent[ci] = prim["parent"].map(idx).to_numpy(dtype=np.int64)
    worst = e.groupby("child")["code"].max()
    own = np.full(n, -1, dtype=np.int64)
    own[np.asarray(worst.index.map(idx), dtype=np.int64)] = worst.to_numpy()

    # walk the primary chains by pointer jumping (log2(depth) rounds): depth and the worst
    # model verdict on the way up; then the root each chain ends at
    depth = (parent >= 0).astype(np.int64)
    chain_worst = own.copy()
    jump = parent.copy()
    for _ in range(64):
        active = np.flatnonzero(jump >= 0)
        if not active.size:
            break
        j = jump[active]
        chain_worst[active] = np.maximum(chain_worst[active], chain_worst[j])
        depth[active] += depth[j]
        jump[active] = jump[j]
    root = _resolve_roots(parent)

    # inheritors: models whose primary chain passes through each model
    inheritors = np.zeros(n, dtype=np.int64)
    for d in range(int(depth.max()) if n else 0, 0, -1):
        at = np.flatnonzero(depth == d)
        np.add.at(inheritors, parent[at], inheritors[at] + 1)

    ids = nodes["id"].to_numpy(dtype=object)
    authors = nodes["author"].to_numpy(dtype=object)
    licence = nodes["licence"].to_numpy(dtype=object)
    licence = np.where(pd.isna(licence), None, licence)
    names = np.asarray(VERDICTS + (None,), dtype=object)  # code -1 → None
    models = pd.DataFrame({
        "id": ids, "author": authors, "licence": licence,
        "downloads": pd.to_numeric(nodes["downloads"], errors="coerce").to_numpy(),
        "verdict": names[own], "parent": np.where(parent >= 0, ids[parent], None),
        "depth": depth, "root": ids[root], "root_author": authors[root],
        "root_licence": licence[root], "chain": _chains(ids, licence, parent),
        "chain_verdict": names[chain_worst], "inheritors": inheritors})
    derived = models[models["parent"].notna()].reset_index(drop=True)
    families = _families(derived, models)
    publishers = _publishers(derived)
    edges_out = e[["child", "parent", "relation", "child_author", "parent_author",
                   "parent_licence", "child_licence", "verdict", "reason", "primary"]].rename(
        columns={"child_licence": "licence"}).reset_index(drop=True)
    meta = {"edges": len(edges_out), "models": len(derived), "families": len(families),
            "verdicts": {v: int((derived["verdict"] == v).sum()) for v in VERDICTS}}
    return LicenceAudit(edges=edges_out, models=derived, families=families,
                        publishers=publishers, meta=meta)


def _resolve_roots(parent: np.ndarray) -> np.ndarray:
    """The root (the end of the primary chain) of every node, by pointer doubling."""
    up = np.where(parent >= 0, parent, np.arange(len(parent)))
    for _ in range(64):
        nxt = up[up]
        if np.array_equal(nxt, up):
            return up
        up = nxt
    raise ValueError("the lineage has a cycle on the primary chains")  # pragma: no cover


def _chains(ids: np.ndarray, licence: np.ndarray, parent: np.ndarray) -> list[str | None]:
    """'licence (id) ← parent licence (parent id) ← …' up the primary chain, for models
    with a parent; memoised from the root down so each model costs one string join."""
    memo: dict[int, str] = {}

    def label(i: int) -> str:
        return f"{licence[i] or '(none)'} ({ids[i]})"

    out: list[str | None] = []
    for i in range(len(ids)):
        if parent[i] < 0:
            out.append(None)
            continue
        path = []
        j = i
        while j >= 0 and j not in memo:
            path.append(j)
            j = parent[j]
        tail = memo.get(j, "") if j >= 0 else ""
        for k in reversed(path):
            tail = label(k) + (" ← " + tail if tail else "")
            memo[k] = tail
        out.append(memo[i])
    return out


def _verdict_columns(df: pd.DataFrame, key: str, col: str = "verdict") -> pd.DataFrame:
    wide = df.groupby([key, col]).size().unstack(fill_value=0)
    return wide.reindex(columns=list(VERDICTS), fill_value=0).rename_axis(None, axis=1)


def _families(derived: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    cols = ["root", "root_author", "root_licence", "models", *VERDICTS, "conflict_share", "worst"]
    if derived.empty:
        return pd.DataFrame(columns=cols)
    wide = _verdict_columns(derived, "root")
    wide.insert(0, "models", wide.sum(axis=1))
    roots = models.set_index("id").loc[wide.index, ["author", "licence"]]
    wide.insert(0, "root_licence", roots["licence"].to_numpy())
    wide.insert(0, "root_author", roots["author"].to_numpy())
    wide["conflict_share"] = wide[CONFLICT] / wide["models"]
    conf = derived[derived["verdict"] == CONFLICT].sort_values(
        ["inheritors", "downloads", "id"], ascending=[False, False, True])
    worst = conf.groupby("root")["id"].apply(lambda s: ", ".join(s.head(5)))
    wide["worst"] = worst.reindex(wide.index).fillna("")
    out = wide.rename_axis("root").reset_index()
    return out.sort_values([CONFLICT, "models"], ascending=False)[cols].reset_index(drop=True)


def _publishers(derived: pd.DataFrame) -> pd.DataFrame:
    cols = ["author", "derivatives", *VERDICTS, "conflict_share", "family_models",
            "family_conflicts"]
    if derived.empty:
        return pd.DataFrame(columns=cols)
    own = _verdict_columns(derived, "author")
    own.insert(0, "derivatives", own.sum(axis=1))
    fam = derived.assign(_c=derived["verdict"] == CONFLICT).groupby("root_author").agg(
        family_models=("id", "size"), family_conflicts=("_c", "sum"))
    out = own.join(fam, how="outer").fillna(0)
    out = out.astype({c: "int64" for c in out.columns})
    out["conflict_share"] = np.where(out["derivatives"] > 0,
                                     out[CONFLICT] / out["derivatives"].where(
                                         out["derivatives"] > 0, 1), 0.0)
    out = out.rename_axis("author").reset_index()
    return out.sort_values([CONFLICT, "derivatives"], ascending=False)[cols] \
        .reset_index(drop=True)


def build_licence_audit(store: GraphStore | None = None) -> LicenceAudit:
    """Batch builder: judge every lineage edge of the graph (5-15 s on the full graph, about
    half of it the edge query). The scheduled job runs it (`analytics.pipeline`)."""
    from graph import views_queries as vq

    with store_or_open(store) as s:
        return audit_edges(vq.lineage_edges_with_models(s))


def verdict_rows(audit: LicenceAudit) -> pa.Table:
    """The audit's per-model verdicts as `graph.schema.LICENCE_PROPERTIES` rows (id + one
    column per property), the table `write_licence_verdicts` stores."""
    m = audit.models
    return pa.table({"id": pa.array(m["id"].astype(object), pa.string()),
                     "licenseVerdict": pa.array(m["verdict"].astype(object), pa.string()),
                     "licenseChainVerdict": pa.array(m["chain_verdict"].astype(object),
                                                     pa.string()),
                     "familyRoot": pa.array(m["root"].astype(object), pa.string())})


def write_licence_verdicts(store: GraphStore, audit: LicenceAudit) -> dict[str, int]:
    """Write the verdicts into a writable store (the staging copy, before it is published):
    `Model.licenseVerdict`, `licenseChainVerdict` and `familyRoot`, replacing earlier values
    in one transaction. Per-edge verdicts stay in the saved audit (`LicenceAudit.edges`).
    Returns the rows written."""
    from graph import views_queries as vq

    rows = verdict_rows(audit)
    vq.write_licence_verdicts(store, rows)
    return {"models": rows.num_rows}
