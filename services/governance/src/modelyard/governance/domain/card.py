"""Model cards: assembled from registry metadata, lineage, check results, fairness numbers, approvals and
deployment history; JSON with the field names of Google's Model Card Toolkit schema, and Markdown.

Free-text sections come from version (or model) tags a data scientist sets at registration: `intended_use`,
`users`, `factors`, `ethical_considerations`, `mitigation`, `caveats`, `tradeoffs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.governance.domain.checks import IMPORTANCE_PREFIX, CheckResult
from modelyard.governance.domain.model import VersionFacts
from modelyard.governance.domain.workflow import PromotionRequest


@dataclass(frozen=True)
class DeploymentRecord:
    revision: int
    at: str  # ISO 8601
    role: str  # "primary", "canary", "shadow", "rolled back"
    alias: str
    request_id: str


def build_card(
    facts: VersionFacts, request: PromotionRequest | None, deployments: Sequence[DeploymentRecord]
) -> dict[str, Any]:
    tags = facts.tags
    checks = request.checks if request else []
    fairness = next((c for c in checks if c.name == "fairness"), None)
    factors = [tags["factors"]] if tags.get("factors") else []
    if fairness is not None and "sensitive_column" in fairness.evidence:
        factors.append(f"sensitive attribute: {fairness.evidence['sensitive_column']}")
    return {
        "model_details": {
            "name": facts.ref.model_name,
            "overview": facts.description,
            "owners": [{"name": facts.owner or facts.created_by}],
            "version": {"name": str(facts.ref.version), "date": facts.created_at.isoformat()},
            "references": [{"reference": facts.code_revision}] if facts.code_revision else [],
            "path": facts.ref.digest,
        },
        "model_parameters": {
            "data": [
                *({"name": "training", "link": d} for d in facts.training_datasets),
                *({"name": "evaluation", "link": d} for d in facts.evaluation_datasets),
            ],
            "input_format": ", ".join(f"{t.name}: {t.element_type}" for t in facts.signature.inputs),
            "output_format": ", ".join(f"{t.name}: {t.element_type}" for t in facts.signature.outputs),
        },
        "quantitative_analysis": {"performance_metrics": _metrics(facts, checks)},
        # Not in the toolkit's schema: global feature importance measured by governance at promotion.
        "explainability": _explainability(checks),
        "considerations": {
            "users": _descriptions(tags.get("users")),
            "use_cases": _descriptions(tags.get("intended_use")),
            "limitations": _descriptions(tags.get("caveats")),
            "tradeoffs": _descriptions(tags.get("tradeoffs")),
            "ethical_considerations": (
                [{"name": tags["ethical_considerations"], "mitigation_strategy": tags.get("mitigation", "")}]
                if tags.get("ethical_considerations")
                else []
            ),
        },
        # Not in the toolkit's schema: the governance record behind the card.
        "governance": {
            "factors": factors,
            "policy_hash": request.policy_hash if request else "",
            "request_id": request.id if request else "",
            "state": str(request.state) if request else "",
            "checks": [_check(c) for c in checks],
            "approvals": [
                {"approver": a.approver, "digest": a.digest, "at": a.at.isoformat()}
                for a in (request.approvals if request else [])
            ],
            "deployments": [vars(d) for d in deployments],
        },
    }


def missing_sections(card: dict[str, Any]) -> list[str]:
    """The sections of the issue's card outline (see `policy.CARD_SECTIONS`) that have no content."""
    data = card["model_parameters"]["data"]
    considerations = card["considerations"]
    present = {
        "model_details": bool(card["model_details"]["overview"]),
        "intended_use": bool(considerations["use_cases"]),
        "factors": bool(card["governance"]["factors"]),
        "metrics": bool(card["quantitative_analysis"]["performance_metrics"]),
        "evaluation_data": any(d["name"] == "evaluation" for d in data),
        "training_data": any(d["name"] == "training" for d in data),
        "ethical_considerations": bool(considerations["ethical_considerations"]),
        "caveats": bool(considerations["limitations"]),
    }
    return [section for section, ok in present.items() if not ok]


def render_markdown(card: dict[str, Any]) -> str:
    details, considerations, gov = card["model_details"], card["considerations"], card["governance"]
    lines = [
        f"# Model card: {details['name']} v{details['version']['name']}",
        "",
        "## Model details",
        "",
        details["overview"] or "_No description._",
        "",
        f"- Owners: {', '.join(o['name'] for o in details['owners'])}",
        f"- Registered: {details['version']['date']}",
        f"- Artifact: `{details['path']}`",
        *(f"- Code: {r['reference']}" for r in details["references"]),
        "",
        "## Intended use",
        "",
        *_bullets([u["description"] for u in considerations["use_cases"] + considerations["users"]]),
        "",
        "## Factors",
        "",
        *_bullets(gov["factors"]),
        "",
        "## Metrics",
        "",
        "| metric | value | source |",
        "|---|---|---|",
        *(
            f"| {m['type']} | {m['value']} | {m['slice']} |"
            for m in card["quantitative_analysis"]["performance_metrics"]
        ),
        "",
        "## Explainability",
        "",
        *_explainability_lines(card["explainability"]),
        "",
        "## Evaluation data",
        "",
        *_bullets([f"`{d['link']}`" for d in card["model_parameters"]["data"] if d["name"] == "evaluation"]),
        "",
        "## Training data",
        "",
        *_bullets([f"`{d['link']}`" for d in card["model_parameters"]["data"] if d["name"] == "training"]),
        "",
        "## Ethical considerations",
        "",
        *_bullets(
            [
                f"{e['name']} (mitigation: {e['mitigation_strategy'] or 'none'})"
                for e in considerations["ethical_considerations"]
            ]
        ),
        "",
        "## Caveats and recommendations",
        "",
        *_bullets([c["description"] for c in considerations["limitations"] + considerations["tradeoffs"]]),
        "",
        "## Governance",
        "",
        f"- Request: {gov['request_id'] or 'none'} ({gov['state'] or 'not requested'}), policy `{gov['policy_hash']}`",
        *(f"- Check {c['name']}: {'passed' if c['passed'] else 'FAILED'} ({c['detail']})" for c in gov["checks"]),
        *(f"- Approved by {a['approver']} at {a['at']} for `{a['digest']}`" for a in gov["approvals"]),
        *(f"- Plan r{d['revision']} at {d['at']}: {d['role']} on {d['alias']}" for d in gov["deployments"]),
    ]
    return "\n".join(lines) + "\n"


def _metrics(facts: VersionFacts, checks: list[CheckResult]) -> list[dict[str, Any]]:
    metrics = [{"type": k, "value": v, "slice": "lineage"} for k, v in sorted(facts.metrics.items())]
    for check in checks:
        if check.name in ("evaluation", "fairness", "latency"):
            metrics += [
                {"type": k, "value": v, "slice": f"governance {check.name}"}
                for k, v in sorted(check.evidence.items())
                if isinstance(v, float | int) and k not in ("rows", "budget_ms")
            ]
    return metrics


def _explainability(checks: list[CheckResult]) -> dict[str, Any]:
    check = next((c for c in checks if c.name == "explainability"), None)
    if check is None or not check.evidence:
        return {"method": "", "rows": 0, "global_importance": []}
    evidence = check.evidence
    return {
        "method": evidence.get("method", ""),
        "rows": evidence.get("rows", 0),
        "global_importance": [
            {"feature": key.removeprefix(IMPORTANCE_PREFIX), "mean_abs_attribution": value}
            for key, value in evidence.items()
            if key.startswith(IMPORTANCE_PREFIX)
        ],
    }


def _explainability_lines(section: dict[str, Any]) -> list[str]:
    if not section["global_importance"]:
        return ["_Not measured._"]
    return [
        f"Global importance: mean |attribution| over {section['rows']} evaluation rows ({section['method']}).",
        "",
        "| feature | mean abs. attribution |",
        "|---|---|",
        *(f"| {f['feature']} | {f['mean_abs_attribution']:.4g} |" for f in section["global_importance"]),
    ]


def _check(check: CheckResult) -> dict[str, Any]:
    return {"name": check.name, "passed": check.passed, "detail": check.detail, "evidence": dict(check.evidence)}


def _descriptions(text: str | None) -> list[dict[str, str]]:
    return [{"description": text}] if text else []


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items] or ["_Not documented._"]
