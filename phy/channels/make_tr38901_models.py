"""Write ``tr38901_models.json``, the 3GPP TR 38.901 TDL/CDL tables of the JAX twin.

Run once, with Sionna installed (``python -m airinfer.phy.channels.make_tr38901_models``):
it copies the fields the twin needs from Sionna's own model files
(``sionna/phy/channel/tr38901/models/{TDL,CDL}-{A..E}.json``), which transcribe
Tables 7.7.2-1…5 (TDL) and 7.7.1-1…5 (CDL) of TR 38.901, and adds the ray offset
angles of Table 7.5-3 that Sionna's CDL spreads each cluster over. The files are
located without importing Sionna (which would import TensorFlow). The test suite
compares the shipped file with Sionna's files and Sionna's blocks.
"""

import importlib.util
import json
import pathlib

__all__ = ["MODELS", "RAY_OFFSETS", "sionna_model_file", "tables", "main"]

MODELS = tuple(f"{family}-{letter}" for family in ("tdl", "cdl") for letter in "abcde")
TDL_FIELDS = ("los", "scale_delays", "delays", "powers")
CDL_FIELDS = ("los", "delays", "powers", "aod", "aoa", "zod", "zoa",
              "cASD", "cASA", "cZSD", "cZSA", "xpr")  # fmt: skip
#: Table 7.5-3 of TR 38.901: ray offset angles within a cluster for a unit angle spread
#: (20 rays).
RAY_OFFSETS = (0.0447, -0.0447, 0.1413, -0.1413, 0.2492, -0.2492, 0.3715, -0.3715,
               0.5129, -0.5129, 0.6797, -0.6797, 0.8844, -0.8844, 1.1481, -1.1481,
               1.5195, -1.5195, 2.1551, -2.1551)  # fmt: skip
OUTPUT = pathlib.Path(__file__).with_name("tr38901_models.json")


def sionna_model_file(model):
    """Path of Sionna's JSON file of ``model`` (``"tdl-a"`` → ``.../models/TDL-A.json``)."""
    spec = importlib.util.find_spec("sionna")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("sionna is not installed: the tables are generated from its model files")
    root = pathlib.Path(next(iter(spec.submodule_search_locations)))
    return root / "phy" / "channel" / "tr38901" / "models" / f"{model.upper()}.json"


def tables():
    """``{"models": {model: fields}, "ray_offsets": [...]}`` from Sionna's model files."""
    models = {}
    for model in MODELS:
        params = json.loads(sionna_model_file(model).read_text())
        fields = TDL_FIELDS if model.startswith("tdl") else CDL_FIELDS
        models[model] = {name: params[name] for name in fields}
    return {
        "source": "3GPP TR 38.901 TDL/CDL tables, copied from Sionna 1.2's model files",
        "models": models,
        "ray_offsets": list(RAY_OFFSETS),
    }


def main():
    OUTPUT.write_text(json.dumps(tables(), indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
