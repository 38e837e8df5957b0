"""config/*.yaml stay in step with the nodes' parameter tables: every key is a declared
parameter, every value passes its check, and nothing is left for a typo to hide in."""

from pathlib import Path

import pytest
import yaml

from ad_perception.core.node_params import NODE_PARAMS, validate

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def _node_sections(path: Path) -> dict[str, dict]:
    data = yaml.safe_load(path.read_text())
    sections = {}
    for key, body in data.items():
        node = key.rsplit("/", 1)[-1]
        assert key.startswith("/**/"), f"{path.name}: {key} should match any namespace (/**/)"
        sections[node] = _flatten(body["ros__parameters"])
    return sections


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_node_file_declares_exactly_the_node_parameters(node):
    sections = _node_sections(CONFIG / f"{node}.yaml")
    assert list(sections) == [node]
    names = {spec.name for spec in NODE_PARAMS[node]}
    assert set(sections[node]) == names, set(sections[node]) ^ names
    validate(NODE_PARAMS[node], sections[node])


def test_carla_overrides_are_valid_parameters():
    for node, values in _node_sections(CONFIG / "carla.yaml").items():
        names = {spec.name for spec in NODE_PARAMS[node]}
        assert set(values) <= names
        validate(NODE_PARAMS[node], values)
