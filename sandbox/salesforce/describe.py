"""describe() shapes: describeGlobal, an sObject's describe, and its basic info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.salesforce.schema import FieldDef, ObjectDef, Schema

SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "double": "xsd:double",
              "currency": "xsd:double", "percent": "xsd:double", "int": "xsd:int", "date": "xsd:date",
              "datetime": "xsd:dateTime"}


def _urls(obj: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {"compactLayouts": f"{base}/describe/compactLayouts", "rowTemplate": f"{base}/{{ID}}",
            "defaultValues": f"{base}/defaultValues?recordTypeId&fields", "describe": f"{base}/describe",
            "sobject": base}


def object_summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of describeGlobal (also ``objectDescribe`` of GET /sobjects/{obj})."""
    user = obj.name == "User"
    return {
        "activateable": False, "associateEntityType": None, "associateParentEntity": None,
        "createable": obj.createable, "custom": obj.custom, "customSetting": False,
        "deepCloneable": False, "deletable": not user, "deprecatedAndHidden": False, "feedEnabled": False,
        "hasSubtypes": False, "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix,
        "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True, "mergeable": not obj.custom,
        "mruEnabled": True, "name": obj.name, "queryable": True, "replicateable": True, "retrieveable": True,
        "searchable": True, "triggerable": True, "undeletable": not user, "updateable": True,
        "urls": _urls(obj, version),
    }


def field_describe(f: FieldDef, obj: ObjectDef) -> dict[str, Any]:
    text = f.type not in SOAP_TYPES
    digits = f.precision if f.type == "int" else 0
    filterable = not (f.type == "textarea" and f.length > 255)
    default = f.default if f.type == "boolean" else None
    return {
        "aggregatable": filterable, "aiPredictionField": False, "autoNumber": obj.name_kind == "AutoNumber"
        and f.name_field, "byteLength": f.length * 3 if text else 0, "calculated": False,
        "calculatedFormula": None, "cascadeDelete": False, "caseSensitive": f.case_sensitive and f.unique,
        "compoundFieldName": None, "controllerName": None, "createable": f.createable, "custom": f.custom,
        "defaultValue": default, "defaultValueFormula": None, "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False, "deprecatedAndHidden": False, "digits": digits, "displayLocationInDecimal": False,
        "encrypted": False, "externalId": f.external_id, "extraTypeInfo": f.extra_type, "filterable": filterable,
        "filteredLookupInfo": None, "formulaTreatNullNumberAsZero": False, "groupable": filterable
        and f.type not in ("double", "currency", "percent", "datetime"), "highScaleNumber": False,
        "htmlFormatted": f.extra_type == "richtextarea", "idLookup": f.name == "Id" or f.external_id,
        "inlineHelpText": None, "label": f.label, "length": f.length if text or f.type in ("id", "reference") else 0,
        "mask": None, "maskType": None, "name": f.name, "nameField": f.name_field, "namePointing": False,
        "nillable": f.nillable, "permissionable": f.nillable and f.createable, "picklistValues": [
            {"active": p.active, "defaultValue": p.default, "label": p.label, "validFor": None, "value": p.value}
            for p in f.picklist
        ], "polymorphicForeignKey": len(f.reference_to) > 1, "precision": 0 if f.type == "int" else f.precision,
        "queryByDistance": False, "referenceTargetField": None, "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name, "relationshipOrder": None, "restrictedDelete": False,
        "restrictedPicklist": f.restricted, "scale": f.scale, "searchPrefilterable": f.type == "reference",
        "soapType": SOAP_TYPES.get(f.type, "xsd:string"), "sortable": filterable, "type": f.type,
        "unique": f.unique, "updateable": f.updateable, "writeRequiresMasterRead": False,
    }


def child_relationships(obj: ObjectDef, schema: Schema) -> list[dict[str, Any]]:
    out = []
    for other in schema.objects.values():
        for f in other.fields.values():
            if obj.name in f.reference_to and f.relationship_name and f.createable:
                rel = f.child_relationship or (None if f.custom else other.label_plural)
                out.append({"cascadeDelete": False, "childSObject": other.name, "deprecatedAndHidden": False,
                            "field": f.name, "junctionIdListNames": [], "junctionReferenceTo": [],
                            "relationshipName": rel, "restrictedDelete": False})
    return out


def describe(obj: ObjectDef, schema: Schema, version: str) -> dict[str, Any]:
    out = object_summary(obj, version)
    out.update({
        "actionOverrides": [], "childRelationships": child_relationships(obj, schema), "compactLayoutable": True,
        "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None,
        "fields": [field_describe(f, obj) for f in obj.fields.values()], "implementedBy": None,
        "implementsInterfaces": None, "listviewable": None, "lookupLayoutable": None, "namedLayoutInfos": [],
        "networkScopeFieldName": None, "recordTypeInfos": [], "searchLayoutable": True,
        "sobjectDescribeOption": "FULL", "supportedScopes": [{"label": "All records", "name": "everything"}],
    })
    return out


def describe_global(schema: Schema, version: str) -> dict[str, Any]:
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [object_summary(o, version) for o in sorted(schema.objects.values(), key=lambda o: o.name)]}
