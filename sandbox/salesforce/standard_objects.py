"""What every Salesforce org ships: Lead, Contact, Account, User and the system fields.

Only the fields mcsf (and a curious analyst) touch are here; lengths, labels, picklist values
and flags follow Salesforce's describe output for a fresh Enterprise org.
"""

from __future__ import annotations

from sandbox.salesforce.schema import FieldDef, ObjectDef, PicklistValue

LEAD_STATUS = ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")
LEAD_SOURCE = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
INDUSTRY = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
    "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
    "Manufacturing", "Media", "Not For Profit", "Recreation", "Retail", "Shipping", "Technology",
    "Telecommunications", "Transportation", "Utilities", "Other",
)
ACCOUNT_TYPE = ("Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
                "Installation Partner", "Technology Partner", "Other")
SALUTATION = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
RATING = ("Hot", "Warm", "Cold")

# standardValueSets/<Name>.standardValueSet-meta.xml replaces the values of these fields
STANDARD_VALUE_SET_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "LeadSource": (("Lead", "LeadSource"), ("Contact", "LeadSource"), ("Account", "AccountSource")),
    "LeadStatus": (("Lead", "Status"),),
    "Industry": (("Lead", "Industry"), ("Account", "Industry")),
    "AccountType": (("Account", "Type"),),
    "Salutation": (("Lead", "Salutation"), ("Contact", "Salutation")),
    "AccountRating": (("Account", "Rating"),),
    "LeadRating": (("Lead", "Rating"),),
}


def _s(name: str, label: str, length: int, **kw: object) -> FieldDef:
    return FieldDef(name=name, label=label, type=kw.pop("type", "string"), length=length, **kw)  # type: ignore[arg-type]


def _pick(name: str, label: str, values: tuple[str, ...], default: str | None = None, **kw: object) -> FieldDef:
    items = tuple(PicklistValue(v, v, v == default) for v in values)
    return FieldDef(name=name, label=label, type="picklist", length=255, picklist=items, default=default,
                    defaulted_on_create=default is not None, **kw)  # type: ignore[arg-type]


def _ref(name: str, label: str, to: tuple[str, ...], rel: str, **kw: object) -> FieldDef:
    return FieldDef(name=name, label=label, type="reference", length=18, reference_to=to,
                    relationship_name=rel, **kw)  # type: ignore[arg-type]


def _bool(name: str, label: str, **kw: object) -> FieldDef:
    return FieldDef(name=name, label=label, type="boolean", nillable=False, defaulted_on_create=True,
                    default=False, **kw)  # type: ignore[arg-type]


def _num(name: str, label: str, kind: str = "double", precision: int = 18, scale: int = 0) -> FieldDef:
    return FieldDef(name=name, label=label, type=kind, precision=precision, scale=scale)


_RO = {"createable": False, "updateable": False}


def _head(obj_label: str) -> list[FieldDef]:
    return [
        FieldDef(name="Id", label=f"{obj_label} ID", type="id", length=18, nillable=False,
                 defaulted_on_create=True, **_RO),
        _bool("IsDeleted", "Deleted", **_RO),
    ]


def _audit(owner: bool = True) -> list[FieldDef]:
    dt = {"type": "datetime", "nillable": False, "defaulted_on_create": True, **_RO}
    out = [
        FieldDef(name="CreatedDate", label="Created Date", **dt),  # type: ignore[arg-type]
        _ref("CreatedById", "Created By ID", ("User",), "CreatedBy", nillable=False, defaulted_on_create=True,
             **_RO),
        FieldDef(name="LastModifiedDate", label="Last Modified Date", **dt),  # type: ignore[arg-type]
        _ref("LastModifiedById", "Last Modified By ID", ("User",), "LastModifiedBy", nillable=False,
             defaulted_on_create=True, **_RO),
        FieldDef(name="SystemModstamp", label="System Modstamp", **dt),  # type: ignore[arg-type]
    ]
    if owner:
        out.insert(0, _ref("OwnerId", "Owner ID", ("User",), "Owner", nillable=False, defaulted_on_create=True))
    return out


def _person_name() -> list[FieldDef]:
    return [
        _pick("Salutation", "Salutation", SALUTATION),
        _s("FirstName", "First Name", 40),
        _s("LastName", "Last Name", 80, nillable=False),
        _s("Name", "Full Name", 121, name_field=True, **_RO),
    ]


def _email_fields() -> list[FieldDef]:
    return [
        _s("Phone", "Phone", 40, type="phone"),
        _s("MobilePhone", "Mobile Phone", 40, type="phone"),
        _s("Email", "Email", 80, type="email"),
        _s("Title", "Title", 128),
        _bool("HasOptedOutOfEmail", "Email Opt Out"),
        _s("EmailBouncedReason", "Email Bounced Reason", 255),
        FieldDef(name="EmailBouncedDate", label="Email Bounced Date", type="datetime"),
    ]


def _address(prefix: str, label: str) -> list[FieldDef]:
    parts = (("Street", "Street", 255), ("City", "City", 40), ("State", "State/Province", 80),
             ("PostalCode", "Zip/Postal Code", 20), ("Country", "Country", 80))
    return [
        _s(prefix + name, f"{label} {text}".strip(), length,
           **({"type": "textarea", "extra_type": "plaintextarea"} if name == "Street" else {}))
        for name, text, length in parts
    ]


def _description() -> FieldDef:
    return _s("Description", "Description", 32000, type="textarea", extra_type="plaintextarea")


def _obj(name: str, plural: str, prefix: str, fields: list[FieldDef], **kw: object) -> ObjectDef:
    return ObjectDef(name=name, label=name, label_plural=plural, key_prefix=prefix, custom=False,
                     fields={f.name: f for f in fields}, **kw)  # type: ignore[arg-type]


def standard_objects() -> dict[str, ObjectDef]:
    lead = _obj("Lead", "Leads", "00Q", [
        *_head("Lead"), *_person_name(),
        _s("Company", "Company", 255, nillable=False),
        *_address("", ""),
        *_email_fields(),
        _s("Website", "Website", 255, type="url"), _description(),
        _pick("LeadSource", "Lead Source", LEAD_SOURCE),
        FieldDef(name="Status", label="Status", type="picklist", length=255, nillable=False,
                 defaulted_on_create=True, default=LEAD_STATUS[0],
                 picklist=tuple(PicklistValue(v, v, i == 0) for i, v in enumerate(LEAD_STATUS))),
        _pick("Industry", "Industry", INDUSTRY), _pick("Rating", "Rating", RATING),
        _num("AnnualRevenue", "Annual Revenue", "currency"), _num("NumberOfEmployees", "Employees", "int", 8),
        _bool("IsConverted", "Converted"),
        FieldDef(name="ConvertedDate", label="Converted Date", type="date", **_RO),
        _ref("ConvertedAccountId", "Converted Account ID", ("Account",), "ConvertedAccount", **_RO),
        _ref("ConvertedContactId", "Converted Contact ID", ("Contact",), "ConvertedContact", **_RO),
        *_audit(),
    ], name_kind="Compound")
    contact = _obj("Contact", "Contacts", "003", [
        *_head("Contact"), _ref("AccountId", "Account ID", ("Account",), "Account"), *_person_name(),
        *_address("Mailing", "Mailing"), *_email_fields(),
        _s("Department", "Department", 80), _pick("LeadSource", "Lead Source", LEAD_SOURCE),
        FieldDef(name="Birthdate", label="Birthdate", type="date"), _description(),
        *_audit(),
    ], name_kind="Compound")
    account = _obj("Account", "Accounts", "001", [
        *_head("Account"), _s("Name", "Account Name", 255, nillable=False, name_field=True),
        _pick("Type", "Account Type", ACCOUNT_TYPE), _ref("ParentId", "Parent Account ID", ("Account",), "Parent"),
        *_address("Billing", "Billing"), *_address("Shipping", "Shipping"),
        _s("Phone", "Account Phone", 40, type="phone"), _s("Website", "Website", 255, type="url"),
        _pick("Industry", "Industry", INDUSTRY), _pick("Rating", "Account Rating", RATING),
        _pick("AccountSource", "Account Source", LEAD_SOURCE),
        _num("AnnualRevenue", "Annual Revenue", "currency"), _num("NumberOfEmployees", "Employees", "int", 8),
        _description(), *_audit(),
    ])
    user = _obj("User", "Users", "005", [
        *_head("User"),
        _s("Username", "Username", 80, nillable=False, unique=True),
        _s("FirstName", "First Name", 40), _s("LastName", "Last Name", 80, nillable=False),
        _s("Name", "Full Name", 121, name_field=True, **_RO),
        _s("Email", "Email", 128, type="email", nillable=False), _s("Alias", "Alias", 8, nillable=False),
        _bool("IsActive", "Active"), *_audit(owner=False),
    ], createable=False, name_kind="Compound")
    return {o.name: o for o in (lead, contact, account, user)}


def custom_object(name: str, label: str, plural: str, prefix: str, *, name_label: str = "Name",
                  name_kind: str = "Text", display_format: str | None = None) -> ObjectDef:
    """A custom object with the fields Salesforce adds to each one."""
    auto = name_kind == "AutoNumber"
    name_field = _s("Name", name_label, 80 if not auto else 30, name_field=True, defaulted_on_create=True,
                    createable=not auto, updateable=not auto)
    return ObjectDef(name=name, label=label, label_plural=plural, key_prefix=prefix, custom=True,
                     fields={f.name: f for f in (*_head(label), name_field, *_audit())},
                     name_kind=name_kind, display_format=display_format)
