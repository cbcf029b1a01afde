"""Lazy registration: the registry imports a model source (a module whose import
registers models) on the first lookup, and never names the model package itself."""
import sys
import textwrap

import pytest

from cnnlab import registry

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn
    from cnnlab.models.base import CnnModel
    from cnnlab.registry import Paper, Published, register_model

    IMPORTS = []
    IMPORTS.append(1)

    class Tiny(CnnModel):
        def __init__(self, num_classes=10, in_chans=3, width=4):
            super().__init__()
            self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, width
            self.conv = nn.Conv2d(in_chans, width, 3, padding=1)
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(width, num_classes)

        def forward_features(self, x):
            return self.conv(x)

    @register_model(family="tiny", paper=Paper("t", "a", 2020, arxiv="0000.00000"), input_size=(3, 8, 8),
                    min_input_size=1, dataset="cifar", published=Published(source="none"))
    def tiny_plugin_net(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> Tiny:
        return Tiny(num_classes=num_classes, in_chans=in_chans, **kwargs)
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "cnnlab_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cnnlab_test_plugin"
    # leave the registry as it was for the other tests
    registry._SOURCES.remove("cnnlab_test_plugin")
    registry._LOADED.discard("cnnlab_test_plugin")
    registry._BUILDERS.pop("tiny_plugin_net", None)
    registry._INFOS.pop("tiny_plugin_net", None)
    registry._CFG_CACHE.pop("tiny_plugin_net", None)
    sys.modules.pop("cnnlab_test_plugin", None)


def test_a_source_is_imported_on_the_first_lookup_only(plugin):
    registry.add_model_source(plugin)
    assert plugin not in sys.modules  # naming a source imports nothing
    assert registry.list_models("tiny*") == ["tiny_plugin_net"]
    assert sys.modules[plugin].IMPORTS == [1]
    registry.list_models()
    assert sys.modules[plugin].IMPORTS == [1]  # once
    model = registry.create_model("tiny_plugin_net", num_classes=3, width=6)
    assert model.num_features == 6
    # the registry's checks apply to plugins too
    with pytest.raises(TypeError, match=r"tiny_plugin_net: unexpected argument\(s\) 'widht'.*did you mean width"):
        registry.create_model("tiny_plugin_net", widht=6)


def test_the_package_registers_cnnlab_models_as_its_source():
    assert "cnnlab.models" in registry._SOURCES
