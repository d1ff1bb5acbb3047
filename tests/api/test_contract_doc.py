"""docs/contract.md stays true to switchboard_api.contract."""

from switchboard_api import contract, contract_doc, defaults


def test_generated_tables_are_current():
    document = contract_doc.CONTRACT_DOC.read_text()
    assert contract_doc.with_fresh_tables(document) == document, (
        "docs/contract.md is stale; run `python -m switchboard_api.contract_doc`"
    )


def test_every_contract_field_and_env_var_is_documented():
    document = contract_doc.CONTRACT_DOC.read_text()
    for model in contract_doc.MESSAGES:
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in document, (model.__name__, name)
    for var in contract.SfuEnv:
        assert f"`{var.value}`" in document


def test_prose_names_the_contract_constants():
    document = " ".join(contract_doc.CONTRACT_DOC.read_text().split())
    facts = [
        contract.CONTRACT_VERSION,
        contract.REPORT_PATH,
        contract.JOIN_PATH_TEMPLATE,
        contract.REPORT_TOKEN_AUDIENCE,
        contract.JOIN_TOKEN_ISSUER,
        contract.JOIN_TOKEN_AUDIENCE,
        contract.JOIN_TOKEN_ALGORITHM,
        contract.JoinKeySecrets.SIGNING_SECRET,
        contract.JoinKeySecrets.PUBLIC_KEYS_CONFIGMAP,
        contract.SfuMounts.REPORT_TOKEN_FILE,
        contract.SfuMounts.JOIN_KEYS_DIR,
        contract.SfuMounts.TURN_SECRET_FILE,
        f"{contract.JOIN_TOKEN_LEEWAY_SECONDS} s",
        f"at most {contract.MAX_REPORT_INTERVAL_SECONDS:g} s",
        f"lifetime of {contract.REPORT_TOKEN_EXPIRATION_SECONDS} s",
        f"default lifetime {defaults.JOIN_TOKEN_TTL_SECONDS} s",
    ]
    missing = [fact for fact in facts if fact not in document]
    assert not missing
