"""Translated labels of the sales vocabulary (codes live in models.py; numbers in rules).

A code an admin adds in a rule file (a new stage, say) and that has no label here is
shown as the code itself, with underscores as spaces.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS: dict[str, dict[str, object]] = {
    "customer_stage": {"prospect": _l("Prospect"), "customer": _l("Customer")},
    "grade": {
        "A": _l("A: strategic"),
        "B": _l("B: key"),
        "C": _l("C: ordinary"),
        "D": _l("D: small or dormant"),
    },
    "size": {
        "micro": _l("Micro (under 10 staff)"),
        "small": _l("Small (10-99)"),
        "medium": _l("Medium (100-499)"),
        "large": _l("Large (500-1999)"),
        "enterprise": _l("Enterprise (2000+)"),
    },
    "source": {
        "referral": _l("Referral"),
        "exhibition": _l("Exhibition"),
        "website": _l("Website"),
        "cold_call": _l("Cold call"),
        "partner": _l("Partner"),
        "import": _l("Imported list"),
        "other": _l("Other"),
    },
    "activity_kind": {
        "call": _l("Call"),
        "email": _l("Email"),
        "visit": _l("Visit"),
        "meeting": _l("Meeting"),
        "other": _l("Other"),
    },
    "market_note_kind": {
        "market": _l("Market information"),
        "competitor": _l("Competitor"),
        "policy": _l("Policy or regulation"),
        "price": _l("Prices"),
    },
    "import_status": {
        "queued": _l("Waiting to start"),
        "checking": _l("Checking rows"),
        "failed": _l("Failed: nothing imported"),
        "importing": _l("Saving"),
        "done": _l("Imported"),
    },
    "import_field": {
        "name": _l("Customer name"),
        "phone": _l("Phone"),
        "tax_id": _l("Tax ID (unified social credit code)"),
        "industry": _l("Industry"),
        "size": _l("Company size"),
        "region": _l("Region"),
        "city": _l("City"),
        "source": _l("Source"),
        "need": _l("Need"),
        "grade": _l("Grade"),
        "email": _l("Email"),
        "address": _l("Address"),
        "notes": _l("Notes"),
        "stage": _l("Stage"),
        "qualified": _l("Screening"),
    },
    "stage": {
        "lead": _l("Lead"),
        "qualified": _l("Qualified"),
        "needs_analysis": _l("Needs analysis"),
        "proposal": _l("Proposal"),
        "negotiation": _l("Negotiation"),
        "won": _l("Won"),
        "lost": _l("Lost"),
    },
    "opportunity_status": {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")},
    "opportunity_field": {
        "need_analysis": _l("Needs analysis"),
        "proposed_solution": _l("Proposed solution"),
        "amount": _l("Expected amount"),
        "expected_close_on": _l("Expected close date"),
        "decision_maker": _l("Decision maker"),
        "competitors": _l("Competitors"),
        "quotation": _l("A quotation"),
        "accepted_quotation": _l("An accepted quotation"),
        "lost_reason": _l("Lost reason"),
    },
    "lost_reason": {
        "price": _l("Price too high"),
        "competitor": _l("Chose a competitor"),
        "no_budget": _l("No budget"),
        "no_decision": _l("No decision / postponed"),
        "product_fit": _l("Product did not fit"),
        "relationship": _l("Relationship"),
        "other": _l("Other"),
    },
    "quote_status": {
        "draft": _l("Draft"),
        "pending": _l("Waiting for approval"),
        "approved": _l("Approved"),
        "rejected": _l("Rejected"),
        "sent": _l("Sent"),
        "accepted": _l("Accepted"),
        "declined": _l("Declined"),
        "superseded": _l("Superseded"),
    },
    "delivery_method": {
        "pickup": _l("Customer pickup"),
        "courier": _l("Courier"),
        "freight": _l("Freight"),
        "installation": _l("Delivered and installed"),
    },
    "contract_status": {
        "draft": _l("Draft"),
        "in_review": _l("In review"),
        "approved": _l("Approved for signing"),
        "rejected": _l("Rejected"),
        "signed": _l("Signed"),
        "executing": _l("Executing"),
        "completed": _l("Completed"),
        "cancelled": _l("Cancelled"),
    },
    "contract_checklist": {
        "parties_verified": _l("Parties and signatories verified"),
        "scope_clear": _l("Scope, quantities and specifications clear"),
        "price_matches_quote": _l("Price and payment terms match the approved quotation"),
        "delivery_terms": _l("Delivery, installation and acceptance terms stated"),
        "liability_lawful": _l("Liability, warranty and dispute clauses lawful"),
    },
    "milestone_kind": {
        "delivery": _l("Delivery"),
        "installation": _l("Installation"),
        "commissioning": _l("Commissioning"),
        "acceptance": _l("Acceptance"),
    },
    "credit_risk": {"low": _l("Low"), "medium": _l("Medium"), "high": _l("High")},
    "feedback_kind": {"feedback": _l("Feedback"), "complaint": _l("Complaint")},
    "feedback_category": {
        "quality": _l("Product quality"),
        "usage": _l("Results in use"),
        "service": _l("Service"),
        "delivery": _l("Delivery"),
        "billing": _l("Billing"),
        "other": _l("Other"),
    },
    "priority": {
        "low": _l("Low"),
        "normal": _l("Normal"),
        "high": _l("High"),
        "urgent": _l("Urgent"),
    },
    "feedback_status": {
        "open": _l("Open"),
        "responded": _l("Responded"),
        "resolved": _l("Resolved"),
        "closed": _l("Closed"),
    },
    "escalated_to": {
        "none": _l("Not escalated"),
        "supervisor": _l("Supervisor"),
        "manager": _l("Sales manager"),
        "general_manager": _l("General manager"),
    },
    # Industry and region codes are declared in rules/prospect_screening.yaml.
    "industry": {
        "manufacturing": _l("Manufacturing"),
        "machinery": _l("Machinery and equipment"),
        "electronics": _l("Electronics"),
        "automotive": _l("Automotive"),
        "medical": _l("Medical and pharmaceutical"),
        "energy": _l("Energy and utilities"),
        "chemicals": _l("Chemicals"),
        "food": _l("Food and beverage"),
        "construction": _l("Construction and real estate"),
        "logistics": _l("Logistics"),
        "retail": _l("Retail and wholesale"),
        "education": _l("Education"),
        "government": _l("Government and public sector"),
        "it_services": _l("IT and software"),
        "finance": _l("Finance and insurance"),
        "agriculture": _l("Agriculture"),
        "other": _l("Other"),
        "unknown": _l("Unknown"),
    },
    "region": {
        "east": _l("East China"),
        "north": _l("North China"),
        "south": _l("South China"),
        "central": _l("Central China"),
        "southwest": _l("Southwest China"),
        "northwest": _l("Northwest China"),
        "northeast": _l("Northeast China"),
        "overseas": _l("Overseas"),
        "unknown": _l("Unknown"),
    },
    "contract_reviewer": {
        "supervisor": _l("Supervisor"),
        "manager": _l("Sales manager"),
        "finance": _l("Finance"),
        "legal": _l("Legal"),
    },
}


def label(group: str, code: str | None) -> str:
    """The reader's-language label of ``code`` in ``group`` (the code itself if unknown)."""
    if not code:
        return ""
    found = LABELS.get(group, {}).get(code)
    return str(found) if found is not None else code.replace("_", " ")


def choices(group: str, codes: tuple[str, ...] | list[str] | None = None) -> list[tuple[str, str]]:
    """(code, label) pairs for a select field, in ``codes`` order (default: all known)."""
    return [(code, label(group, code)) for code in (codes or list(LABELS[group]))]


# Texts the shipped rule files give as reasons and messages (discount approval, contract
# review), so readers see them in their language. A text an admin writes into a new
# version of a file is shown as written.
RULE_TEXTS: dict[str, object] = {
    "Above the absolute discount cap": _l("Above the absolute discount cap"),
    "The price would be below cost": _l("The price would be below cost"),
    "Thin margin or large deal": _l("Thin margin or large deal"),
    "Above the requester's discount authority": _l("Above the requester's discount authority"),
    "High credit risk: only prepaid or cash-on-delivery contracts (P7.2)": _l(
        "High credit risk: only prepaid or cash-on-delivery contracts (P7.2)"
    ),
    "New customer: check the business licence and credit report before signing": _l(
        "New customer: check the business licence and credit report before signing"
    ),
}


def rule_text(text: str | None) -> object:
    """A rule file's reason or message in the reader's language when the code knows it
    (a lazy string: a notification renders it in its recipient's language)."""
    if not text:
        return ""
    return RULE_TEXTS.get(text, text)
