"""The networks: shapes, causality, label conditioning (FiLM, label dropout, guidance), configs, and tiny models
trained on real Bandai-Namco walks and runs whose loss must fall."""

from __future__ import annotations

import numpy as np
import optiq
import pytest
import torch
from optiq import PluginError
from optiq_models.nets import MLP, ConfigError, LabelError, LabelVocab, Transformer, UNet, build_model
from optiq_models.nets.conditioning import UNKNOWN, LabelEmbedding

BANDAI = "corpora/bandai_namco/data/dataset-1_{}_{}_001.bvh"  # 22 joints, 30 fps
TINY = {
    "mlp": {"hidden": 64, "layers": 2},
    "transformer": {"context": 24, "d_model": 32, "layers": 2, "heads": 2},
    "unet": {"window": 16, "chunk": 8, "channels": [16, 32]},
}
VOCAB = LabelVocab({"movement": ["walk", "run", "walk-back"]})


def clip_features(clip: optiq.Clip) -> np.ndarray:
    """A small causal state for these tests ``[T, 3 + 3J]``: hips height (m), hips horizontal velocity (m/s,
    backward difference), joint positions relative to the hips (m). (Bandai's joint_Root never moves: the hips
    carry the motion.)"""
    p = clip.world_positions()
    hips = p[:, 1]
    vel = np.diff(hips[:, :2], axis=0, prepend=hips[:1, :2]) * clip.fps
    return np.concatenate([hips[:, 2:3], vel, (p - hips[:, None]).reshape(len(p), -1)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def motion(data_dir):
    """Normalised features of 2 walks and 2 runs with their movement label, and the normalisation."""
    clips = [(clip_features(optiq.load_clip(data_dir / BANDAI.format(m, s))), m)
             for m in ("walk", "run") for s in ("active", "happy")]
    allx = np.concatenate([f for f, _ in clips])
    mean, std = allx.mean(0), allx.std(0) + 1e-6
    return [((f - mean) / std, m) for f, m in clips], mean, std


def batches(motion, window: int, size: int, seed: int):
    """Endless random windows ``[size, window + 1, F]`` and their labels."""
    data, _, _ = motion
    rng = np.random.default_rng(seed)
    while True:
        picks = [data[i] for i in rng.integers(len(data), size=size)]
        starts = [rng.integers(0, len(f) - window - 1) for f, _ in picks]
        x = np.stack([f[s:s + window + 1] for (f, _), s in zip(picks, starts, strict=True)])
        yield torch.from_numpy(x), VOCAB.encode_batch([{"movement": m} for _, m in picks])


def train(model, motion, steps: int, window: int = 24, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)  # decay would move unused rows too
    losses = []
    for _, (x, cond) in zip(range(steps), batches(motion, window, 32, seed), strict=False):
        loss = (model(x[:, :-1], cond) - x[:, 1:]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# --- training on real motion -------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["mlp", "transformer", "unet"])
def test_tiny_model_learns_real_walks_and_runs(arch, motion):
    """200 steps (seconds) cut the next-frame loss at least 5x (measured: mlp 27x, transformer 22x, unet 12x),
    and the trained model's next frame beats the zero-velocity guess (repeat the last frame) at least 2x on
    windows it did not train on."""
    model = build_model(arch, motion[0][0][0].shape[1], VOCAB, TINY[arch])
    losses = train(model, motion, 200)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < first / 5, (first, last)
    x, cond = next(batches(motion, 24, 64, seed=99))
    model.eval()
    with torch.no_grad():
        err = (model.predict_next(x[:, :-1], cond) - x[:, -1]).pow(2).mean()
    zero_velocity = (x[:, -2] - x[:, -1]).pow(2).mean()
    assert err < zero_velocity / 2, (float(err), float(zero_velocity))


def test_trained_model_uses_its_labels(motion):
    """After training on walks and runs the label changes the prediction. With every label dropped in training
    (label_dropout 1) only the "unknown" row of the embedding learns: the rows of walk and run keep their initial
    values."""
    f = motion[0][0][0].shape[1]
    x, _ = next(batches(motion, 24, 8, seed=5))
    walk, run = VOCAB.encode_batch([{"movement": "walk"}] * 8), VOCAB.encode_batch([{"movement": "run"}] * 8)
    for dropout in (0.1, 1.0):
        torch.manual_seed(1)
        model = build_model("mlp", f, VOCAB, {**TINY["mlp"], "label_dropout": dropout})
        table = model.encoder.labels.tables["movement"].weight
        before = table.detach().clone()
        train(model, motion, 100)
        moved = (table.detach() - before).abs().amax(dim=1)  # per index: unknown, run, walk, walk-back
        model.eval()
        with torch.no_grad():
            gap = (model(x, walk) - model(x, run)).abs().max().item()
        if dropout == 0.1:
            assert gap > 1e-2 and (moved[:3] > 0).all(), (gap, moved)
        else:
            assert moved[0] > 0 and (moved[1:] == 0).all(), moved


# --- the interface -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MLP, Transformer, UNet])
def test_shapes_and_encoder_contract(cls):
    arch = cls.__name__.lower()
    torch.manual_seed(0)
    model = cls(20, VOCAB, **TINY[arch])
    cond = VOCAB.encode_batch([{"movement": "run"}, {}, {"movement": "walk"}])
    x = torch.randn(3, 30, 20)
    assert model.kind == "next_state"
    assert model(x[:, :20], cond).shape == (3, 20, 20)
    assert model.predict_next(x, cond).shape == (3, 20)
    assert model.rollout(x[:, :5], 13, cond).shape == (3, 13, 20)
    for t in (1, model.context, 30):  # T >= 1: shorter windows are padded, longer ones cut to the context
        assert model.encoder(x[:, :t]).shape == (3, model.encoder.features_dim)
        assert model.encoder(x[:, :t], cond).shape == (3, model.encoder.features_dim)


@pytest.mark.parametrize("cls", [MLP, Transformer, UNet])
def test_predictions_never_read_future_frames(cls):
    torch.manual_seed(0)
    model = cls(20, VOCAB, **TINY[cls.__name__.lower()]).eval()
    for p in model.parameters():  # the zero-initialised heads would hide any dependence
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 24, 20)
    changed = x.clone()
    changed[:, 12:] += 1.0
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.equal(a[:, 12:], b[:, 12:])  # and the change is seen afterwards


@pytest.mark.parametrize("cls", [MLP, Transformer])
def test_untrained_model_is_the_zero_velocity_baseline(cls):
    """The residual heads start at zero: prediction = the current frame, exactly."""
    model = cls(20, VOCAB, **TINY[cls.__name__.lower()])
    x = torch.randn(2, 10, 20)
    assert torch.equal(model(x, VOCAB.encode_batch([{"movement": "run"}] * 2)), x)


def test_unet_rolls_out_chunk_by_chunk():
    torch.manual_seed(0)
    model = UNet(20, VOCAB, **TINY["unet"]).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 20, 20)
    cond = VOCAB.encode_batch([{"movement": "walk"}])
    out = model.rollout(x, 12, cond)
    first = model.predict_chunk(x, cond)
    assert first.shape == (1, 8, 20)
    assert torch.equal(out[:, :8], first)
    assert torch.equal(out[:, 8:], model.predict_chunk(torch.cat([x, first], 1), cond)[:, :4])
    # forward lays the chunks out aligned: position 0 holds the chunk predicted from the window ending at frame 0
    with torch.no_grad():
        aligned = model(x, cond)
    assert torch.allclose(aligned[:, 8:16], model.predict_chunk(x[:, :9], cond), atol=1e-6)


def test_guidance_is_cond_plus_scale_times_cond_minus_uncond():
    torch.manual_seed(0)
    model = Transformer(20, VOCAB, **TINY["transformer"]).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(2, 10, 20)
    cond = VOCAB.encode_batch([{"movement": "run"}, {"movement": "walk-back"}])
    with torch.no_grad():
        c, u = model.predict_next(x, cond), model.predict_next(x, {"movement": torch.zeros(2, dtype=torch.long)})
        assert not torch.allclose(c, u)
        torch.testing.assert_close(model.predict_next(x, cond, guidance=2.5), c + 2.5 * (c - u))


def test_label_dropout_maps_to_unknown_in_training_only():
    emb = LabelEmbedding(VOCAB, 8, dropout=1.0)
    torch.nn.init.normal_(emb.tables["movement"].weight)
    cond = {"movement": torch.tensor([1, 2, 3])}
    unknown = emb.tables["movement"].weight[0]
    assert torch.equal(emb.train()(cond, 3, 4), unknown.expand(3, 4, 8))
    assert not torch.equal(emb.eval()(cond, 3, 4), unknown.expand(3, 4, 8))
    emb.dropout = 0.5
    torch.manual_seed(0)
    dropped = (emb.train()({"movement": torch.full((4000,), 2)}, 4000, 1)[:, 0] == unknown).all(dim=1)
    assert 0.45 < dropped.float().mean() < 0.55


def test_frame_labels_follow_the_rollout():
    """Frame labels ``[B, T + steps]``: the label of each frame to come is the one used when predicting it."""
    torch.manual_seed(0)
    model = MLP(20, VOCAB, **TINY["mlp"]).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 6, 20)
    per_frame = torch.tensor([[1] * 6 + [2] * 5])  # walk... then run for the frames to come
    out = model.rollout(x, 5, {"movement": per_frame})
    first = model.predict_next(x, {"movement": torch.tensor([1])})
    assert torch.equal(out[:, 0], first)
    second = model.predict_next(torch.cat([x, first[:, None]], 1), {"movement": per_frame[:, :7]})
    assert torch.equal(out[:, 1], second)
    assert not torch.equal(second, model.predict_next(torch.cat([x, first[:, None]], 1),
                                                      {"movement": torch.tensor([1])}))


def test_diverging_rollout_stops_with_one_line():
    model = MLP(20, VOCAB, **TINY["mlp"])
    with torch.no_grad():
        model.head.bias.fill_(float("inf"))
    with pytest.raises(optiq.OptiqError, match=r"rollout diverged at step 1 of 10: the prediction is not finite"):
        model.rollout(torch.zeros(1, 4, 20), 10)


# --- vocabulary, configs and names ---------------------------------------------------------------------------------
def test_vocab_indices_json_and_unknown_values():
    vocab = LabelVocab({"movement": ["walk", "run", "walk"], "style": ["happy"]})
    assert vocab.labels == {"movement": [UNKNOWN, "run", "walk"], "style": [UNKNOWN, "happy"]}
    assert vocab.encode({"movement": "walk", "subject": "x"}) == {"movement": 2, "style": 0}
    assert LabelVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(LabelError, match=r"^label movement='fly' is unknown to the model; known values: run, walk$"):
        vocab.encode({"movement": "fly"})
    with pytest.raises(LabelError, match=r"not conditioned on label 'movment'; its labels: movement, style"):
        vocab.encode({"movment": "run"}, strict=True)
    with pytest.raises(LabelError, match=r"no clip carries label\(s\) phase"):
        LabelVocab.from_label_dicts([{"movement": "walk"}], ["movement", "phase"])


@pytest.mark.parametrize(("config", "message"), [
    ({"hiden": 8}, r"model config: unknown key 'hiden' for MLP; known keys: cond_dim, label_dropout, context, "),
    ({"hidden": "big"}, r"model config: key 'hidden' of MLP must be an integer, got 'big'"),
    ({"hidden": 8.0}, r"key 'hidden' of MLP must be an integer"),
    ({"label_dropout": True}, r"key 'label_dropout' of MLP must be a number"),
    ({"context": 0}, r"key 'context' must be > 0"),
])
def test_bad_config_is_one_line_naming_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model("mlp", 20, VOCAB, config)


def test_model_specific_config_checks():
    with pytest.raises(ConfigError, match=r"key 'positions' of Transformer must be 'learned' or 'sinusoidal'"):
        build_model("transformer", 20, VOCAB, {"positions": "rotary"})
    with pytest.raises(ConfigError, match=r"window \+ chunk \(10 \+ 3\) must be a multiple of 4"):
        build_model("unet", 20, VOCAB, {"window": 10, "chunk": 3})
    sinus = build_model("transformer", 20, VOCAB, {**TINY["transformer"], "positions": "sinusoidal"})
    assert "encoder.pos" not in sinus.state_dict()  # rebuilt from the formula, not saved


def test_unknown_name_lists_installed_models_and_module_target_works():
    with pytest.raises(PluginError, match=r"unknown model 'lstm'; installed: .*mlp.*transformer.*unet"):
        build_model("lstm", 20, VOCAB)
    model = build_model("optiq_models.nets.mlp:MLP", 20, VOCAB, {"hidden": 8})
    assert isinstance(model, MLP) and model.encoder.features_dim == 8


def test_default_sizes_fit_two_cores():
    """The defaults documented in docs/models.md (F = 250): parameter counts."""
    counts = {name: build_model(name, 250, VOCAB).num_parameters() for name in ("mlp", "transformer", "unet")}
    assert counts == {"mlp": 850682, "transformer": 999290, "unet": 508794}
