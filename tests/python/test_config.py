"""cakes.Config: the same forms and errors as C++'s cakes::Config
(tests/nn/test_config.cpp holds the same table)."""
import pytest

from cakes import Config, ConfigError, NetworkConfig, SubKernel, parse_candidates


def test_forms_round_trip():
    c = Config.parse("3x3x3:22,1x3x3:21,3x1x1:21")
    assert c.conv_channels == c.out_channels == 64
    assert c.taps_times_channels == 22 * 27 + 21 * 9 + 21 * 3
    assert str(c) == "3x3x3:22,1x3x3:21,3x1x1:21"
    assert c.json() == '{"3x3x3":22,"1x3x3":21,"3x1x1":21}'
    assert Config.parse(c.json()) == c
    assert str(Config.parse('{"3x1x1":1,"1x3x3":2}')) == "3x1x1:1,1x3x3:2"
    assert str(Config.parse(" 1x1x1:0 , 3x3x3:4 ")) == "1x1x1:0,3x3x3:4"


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("3x3x3", "DxHxW:channels"),
    ("3x3:4", "expected DxHxW"),
    ("3x2x3:4", "must be 1 or an odd number"),
    ("3x3x3:-1", "not a non-negative integer"),
    ("3x3x3:4,3x3x3:2", "listed twice"),
    ("axbxc:3", "expected DxHxW"),
    ('{"3x3x3": "x"}', "must be an integer"),
    ('{"3x3x3": 4', "bad configuration JSON"),
    ("3x3x3:2;output_index=0", "1 entries for 2 channels"),
    ("3x3x3:2;output_index=0,2", "output channel 1 receives no channel"),
    ("3x3x3:2;output_index=0,x", "not a non-negative integer"),
    ("3x3x3:2;order=0,1", "expected 'output_index="),
    ('{"3x3x3":2,"output_index":[0,-1]}', "is negative"),
    ('{"3x3x3":2,"output_index":"0,1"}', "array of integers"),
])
def test_bad_text_raises_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as e:
        Config.parse(text)
    assert "\n" not in str(e.value)


def test_output_index():
    p = Config.parse("3x3x3:1,1x3x3:2;output_index=2,0,1")
    assert p.output_index == (2, 0, 1) and p.out_channels == 3
    assert str(p) == "3x3x3:1,1x3x3:2;output_index=2,0,1"
    assert p.json() == '{"3x3x3":1,"1x3x3":2,"output_index":[2,0,1]}'
    assert p != Config.parse("3x3x3:1,1x3x3:2;output_index=0,2,1")
    s = Config.parse("3x3x3:2,1x3x3:2;output_index=0,1,0,1")
    assert s.conv_channels == 4 and s.out_channels == 2
    assert Config.parse("3x3x3:1,1x3x3:2;output_index=0,1,2") == Config.parse("3x3x3:1,1x3x3:2")


def test_candidates_and_even_split():
    assert parse_candidates("video_123d") == [SubKernel(3, 3, 3), SubKernel(1, 3, 3), SubKernel(3, 1, 1)]
    assert len(parse_candidates("volumetric_all")) == 7
    with pytest.raises(ConfigError, match="unknown candidate '2x3x3'"):
        parse_candidates("3x3x3,2x3x3")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_candidates("3x3x3,3x3x3")
    assert str(Config.even_split(parse_candidates("video_123d"), 64)) == "3x3x3:22,1x3x3:21,3x1x1:21"


def test_network_config_file(tmp_path):
    nc = NetworkConfig(["3x3x3:2,1x3x3:2", "1x3x3:3,3x1x1:1;output_index=3,2,1,0"], ["a", "b"], "i3d_resnet18",
                       width=4)
    path = tmp_path / "c.json"
    nc.save(path)
    back = NetworkConfig.load(path)
    assert back == nc and back.positions == ["a", "b"] and back.network == "i3d_resnet18" and back.width == 4
    (tmp_path / "bad.json").write_text('{"blocks": [{"3x3x3": 2}, {"2x3x3": 1}]}')
    with pytest.raises(ConfigError, match="block 2: bad sub-kernel '2x3x3'"):
        NetworkConfig.load(tmp_path / "bad.json")
