import pytest

from seq2seq.config import Config, load_config
from seq2seq.errors import Seq2SeqError

GOOD = """\
data:
  train: t.tsv
model:
  decoder:
    attention: bahdanau
training:
  max_steps: 10
"""


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_reference_config_loads():
    cfg = load_config("configs/g2p_cmudict.yaml")
    assert cfg.data.train == "data/cmudict/train.tsv"
    assert cfg.training.max_minutes is not None
    assert cfg.data.valid and cfg.data.test


def _forecast_schema():
    from seq2seq.config.forecast import ForecastConfig
    return ForecastConfig


@pytest.mark.parametrize("path, schema", [("configs/g2p_cmudict.yaml", lambda: Config),
                                          ("configs/forecast_co2.yaml", _forecast_schema)])
def test_reference_config_spells_out_every_key(path, schema):
    """The fully commented references (g2p_cmudict.yaml for text tasks, forecast_co2.yaml for
    forecasting) list every key of their task's schema."""
    import yaml
    from pydantic import BaseModel

    raw = yaml.safe_load(open(path))
    skip = set()

    def missing(model, node, path):
        out = []
        for name, field in model.model_fields.items():
            dotted = ".".join(path + [name])
            if name not in node:
                if dotted not in skip:
                    out.append(dotted)
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += missing(field.annotation, node[name], path + [name])
        return out

    assert missing(schema(), raw, []) == []
    load_config(path)


def test_misspelled_key_names_path_line_and_nearest(tmp_path):
    p = write(tmp_path, GOOD.replace("attention: bahdanau", "atention: bahdanau"))
    with pytest.raises(Seq2SeqError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:5" in msg and "model.decoder.atention" in msg and "did you mean 'attention'" in msg


def test_bad_value_names_key(tmp_path):
    p = write(tmp_path, GOOD.replace("bahdanau", "luong_magic"))
    with pytest.raises(Seq2SeqError, match=r"c.yaml:5: 'model.decoder.attention'"):
        load_config(p)


def test_set_overrides_any_key(tmp_path):
    p = write(tmp_path, GOOD)
    cfg = load_config(p, ["training.max_steps=7", "model.encoder.cell=gru", "data.valid=v.tsv"])
    assert cfg.training.max_steps == 7 and cfg.model.encoder.cell == "gru" and cfg.data.valid == "v.tsv"


def test_set_unknown_key_is_rejected(tmp_path):
    p = write(tmp_path, GOOD)
    with pytest.raises(Seq2SeqError, match="unknown key 'training.max_stepz'.*max_steps"):
        load_config(p, ["training.max_stepz=7"])
    with pytest.raises(Seq2SeqError, match="KEY=VALUE"):
        load_config(p, ["training.max_steps"])


def test_missing_file_and_yaml_syntax(tmp_path):
    with pytest.raises(Seq2SeqError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path, "data:\n  train: [unclosed\n")
    with pytest.raises(Seq2SeqError, match="invalid YAML"):
        load_config(p)


def test_missing_required_and_cross_field_checks(tmp_path):
    with pytest.raises(Seq2SeqError, match="missing required key 'data.train'"):
        load_config(write(tmp_path, "data:\n  valid: v.tsv\ntraining:\n  max_steps: 3\n"))
    with pytest.raises(Seq2SeqError, match="input_feeding needs a luong"):
        load_config(write(tmp_path, GOOD), ["model.decoder.input_feeding=true"])
    with pytest.raises(Seq2SeqError, match="at least one of max_steps"):
        load_config(write(tmp_path, GOOD), ["training.max_steps=null"])
