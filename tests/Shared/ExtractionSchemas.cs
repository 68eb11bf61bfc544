namespace Serving.Tests.Shared;

/// <summary>
/// Twelve extraction schemas of the kinds tenants send (a clinical record, a translation pair, nested arrays, enums, dates,
/// <c>$ref</c>), and a catalogue of schemas the server must refuse with the JSON path of the problem. Strings carry
/// length limits, enums or formats: with a random-weight model an unbounded free string would run to max_tokens.
/// </summary>
public static class ExtractionSchemas
{
    public static readonly (string Name, string Schema)[] Valid =
    [
        ("clinical_record", """
        {"type":"object","properties":{
          "patient_id":{"type":"string","pattern":"P[0-9]{6}"},
          "visit_date":{"type":"string","format":"date"},
          "diagnoses":{"type":"array","items":{"$ref":"#/$defs/diagnosis"},"minItems":1,"maxItems":3},
          "medications":{"type":"array","items":{"$ref":"#/$defs/medication"},"maxItems":3},
          "smoker":{"type":"boolean"},
          "notes":{"type":["string","null"],"maxLength":40}},
         "required":["patient_id","visit_date","diagnoses","medications","smoker"],
         "additionalProperties":false,
         "$defs":{
          "diagnosis":{"type":"object","properties":{
            "code":{"type":"string","pattern":"[A-Z][0-9]{2}(\\.[0-9]{1,2})?"},
            "description":{"type":"string","maxLength":30},
            "severity":{"enum":["mild","moderate","severe"]}},
           "required":["code","severity"],"additionalProperties":false},
          "medication":{"type":"object","properties":{
            "name":{"type":"string","minLength":2,"maxLength":20},
            "dose_mg":{"type":"number","minimum":0,"maximum":5000},
            "frequency":{"enum":["once daily","twice daily","as needed"]},
            "start":{"type":"string","format":"date"}},
           "required":["name","dose_mg","frequency"],"additionalProperties":false}}}
        """),
        ("translation_pair", """
        {"type":"object","properties":{
          "source_language":{"enum":["en","de","fr","es"]},
          "target_language":{"enum":["en","de","fr","es"]},
          "source":{"type":"string","maxLength":60},
          "translation":{"type":"string","minLength":1,"maxLength":60}},
         "required":["source_language","target_language","source","translation"],"additionalProperties":false}
        """),
        ("lab_matrix", """
        {"type":"object","properties":{
          "rows":{"type":"array","minItems":1,"maxItems":3,
                  "items":{"type":"array","minItems":1,"maxItems":3,"items":{"type":"integer","minimum":-100,"maximum":100}}}},
         "required":["rows"],"additionalProperties":false}
        """),
        ("triage", """
        {"type":"object","properties":{
          "kind":{"const":"triage"},
          "priority":{"enum":[1,2,3,4,5]},
          "department":{"enum":["cardiology","neurology","oncology","emergency"]},
          "flags":{"type":"array","items":{"enum":["fall_risk","allergy","isolation"]},"maxItems":3}},
         "required":["kind","priority","department"],"additionalProperties":false}
        """),
        ("appointment", """
        {"type":"object","properties":{
          "start":{"type":"string","format":"date-time"},
          "end":{"type":"string","format":"date-time"},
          "timezone":{"type":"string","pattern":"^[A-Z][a-z]{2,10}/[A-Z][a-z]{2,10}$"},
          "reminder_minutes":{"type":"integer","minimum":0,"maximum":1440},
          "at":{"type":"string","format":"time"}},
         "required":["start","end","timezone","reminder_minutes"],"additionalProperties":false}
        """),
        ("care_tree", """
        {"$defs":{"node":{"type":"object","properties":{
            "name":{"type":"string","maxLength":12},
            "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},
          "required":["name"],"additionalProperties":false}},
         "$ref":"#/$defs/node"}
        """),
        ("lab_result", """
        {"type":"object","properties":{
          "test":{"type":"string","maxLength":16},
          "value":{"anyOf":[{"type":"number","minimum":0,"maximum":1000},{"type":"string","enum":["positive","negative","inconclusive"]}]},
          "unit":{"type":["string","null"],"maxLength":10},
          "reference_range":{"type":"object","properties":{"low":{"type":"number","exclusiveMinimum":-1.5},"high":{"type":"number","exclusiveMaximum":99.5}},
                             "required":["low","high"],"additionalProperties":false}},
         "required":["test","value","reference_range"],"additionalProperties":false}
        """),
        ("ward_event", """
        {"type":"object","properties":{"event":{"oneOf":[
          {"type":"object","properties":{"type":{"const":"admission"},"ward":{"type":"string","maxLength":15}},"required":["type","ward"],"additionalProperties":false},
          {"type":"object","properties":{"type":{"const":"discharge"},"date":{"type":"string","format":"date"}},"required":["type","date"],"additionalProperties":false}]}},
         "required":["event"],"additionalProperties":false}
        """),
        ("sample_record", """
        {"type":"object","properties":{
          "id":{"type":"string","format":"uuid"},
          "count":{"type":"integer"},
          "score":{"type":"number"},
          "tags":{"type":"array","items":{"type":"string","maxLength":8},"maxItems":4},
          "comment":{"type":"string","maxLength":20}},
         "required":["id"],"additionalProperties":false}
        """),
        ("medication_list", """
        {"type":"array","minItems":1,"maxItems":4,"items":{"type":"object","properties":{
          "name":{"enum":["amoxicillin","ibuprofen","metformin","lisinopril"]},
          "dose":{"type":"integer","minimum":1,"maximum":1000},
          "unit":{"enum":["mg","g","ml"]},
          "with_food":{"type":"boolean"},
          "note":{"type":"null"}},
         "required":["name","dose","unit"],"additionalProperties":false}}
        """),
        ("vital_signs", """
        {"type":"object","properties":{
          "blood_pressure":{"type":"array","prefixItems":[{"type":"integer","minimum":40,"maximum":250},{"type":"integer","minimum":20,"maximum":150}],
                            "items":false,"minItems":2},
          "readings":{"type":"array","prefixItems":[{"type":"string","format":"time"},{"enum":["rest","exercise"]}],
                      "items":{"type":"integer","minimum":30,"maximum":220},"minItems":1,"maxItems":5},
          "temperature_c":{"type":"number","multipleOf":0.1,"minimum":30,"maximum":45},
          "infusion_ml":{"type":"integer","multipleOf":25,"minimum":0},
          "interval_minutes":{"type":"integer","multipleOf":15,"minimum":15,"maximum":240}},
         "required":["blood_pressure","readings","temperature_c","infusion_ml","interval_minutes"],"additionalProperties":false}
        """),
        ("device_contact", """
        {"type":"object","properties":{
          "owner_email":{"type":"string","format":"email"},
          "host":{"type":"string","format":"hostname"},
          "address":{"type":"string","format":"ipv4"},
          "address_v6":{"type":"string","format":"ipv6"},
          "check_every":{"type":"string","format":"duration"}},
         "required":["owner_email","host","address","address_v6","check_every"],"additionalProperties":false}
        """),
    ];

    /// <summary>(schema, the JSON path the error names, a fragment of the problem).</summary>
    public static readonly (string Schema, string Path, string Problem)[] Refused =
    [
        ("""{"type":"integer","multipleOf":7,"minimum":1,"maximum":100000}""", "$.multipleOf", "is not supported"),
        ("""{"type":"integer","multipleOf":-2}""", "$.multipleOf", "positive number"),
        ("""{"type":"integer","multipleOf":10,"minimum":1,"maximum":9}""", "$", "no multiple of 10"),
        ("""{"type":"object","properties":{"a":{"type":"string","format":"uri"}}}""", "$.properties.a.format", "format \"uri\" is not supported"),
        ("""{"type":"object","patternProperties":{"^x":{}}}""", "$.patternProperties", "not supported"),
        ("""{"allOf":[{"type":"string"},{"maxLength":3}]}""", "$.allOf", "exactly one schema"),
        ("""{"allOf":[{"type":"string"}],"maxLength":3}""", "$.allOf", "no other keywords"),
        ("""{"not":{"type":"null"}}""", "$.not", "not supported"),
        ("""{"if":{"type":"string"},"then":{"maxLength":2}}""", "$.if", "not supported"),
        ("""{"type":"array","prefixItems":{"type":"string"}}""", "$.prefixItems", "must be an array of schemas"),
        ("""{"type":"array","items":{"type":"string"},"uniqueItems":true}""", "$.uniqueItems", "not supported"),
        ("""{"type":"array","contains":{"type":"string"}}""", "$.contains", "not supported"),
        ("""{"$ref":"https://example.com/schema.json"}""", "$.$ref", "only local references"),
        ("""{"$ref":"#/$defs/missing","$defs":{}}""", "$.$ref", "does not resolve"),
        ("""{"type":"strin"}""", "$.type", "unknown type \"strin\""),
        ("""{"oneOf":[{"type":"integer"},{"type":"number"}]}""", "$.oneOf", "may both match"),
        ("""{"type":"string","pattern":"(a"}""", "$.pattern[2]", "missing ')'"),
        ("""{"type":"string","pattern":"(?=a)b"}""", "$.pattern[0]", "lookaround"),
        ("""{"type":"string","pattern":"a+","maxLength":3}""", "$.maxLength", "not supported"),
        ("""{"type":"object","minProperties":1}""", "$.minProperties", "not supported"),
        ("""{"type":"integer","minimum":5,"maximum":4}""", "$", "no integer lies between"),
        ("""{"type":"array","maxItems":5000}""", "$.maxItems", "at most"),
        ("""{"type":"object","properties":{"x":{"type":"string","maxLength":-1}}}""", "$.properties.x.maxLength", "non-negative integer"),
        ("""{"enum":[]}""", "$.enum", "must not be empty"),
        ("""{"type":"object","required":"a"}""", "$.required", "array of property names"),
        ("""{"type":"object",""", "$", "not valid JSON"),
        ("""{"type":"object","properties":{"a":{"dependentRequired":{}}}}""", "$.properties.a.dependentRequired", "not supported"),
        ("""5""", "$", "must be an object or a boolean"),
        ("""false""", "$", "admits no output"),
        ("""{"anyOf":[{"type":"string"}],"maxLength":3}""", "$.anyOf", "move them into each branch"),
        ("""{"enum":["a","bb"],"maxLength":1}""", "$.maxLength", "beside \"enum\""),
    ];
}
