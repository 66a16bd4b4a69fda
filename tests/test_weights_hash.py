"""The cached checkpoint hash: equal to hashing every weight, and recomputed whenever a weight changes."""

import copy

import torch

from eclip_core.weights_hash import full_hash, weights_hash


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_cached_hash_equals_full_hash_and_follows_training_and_loading():
    net = _net()
    original = weights_hash(net)
    assert original == full_hash(net.state_dict()) == weights_hash(net)
    saved = copy.deepcopy(net.state_dict())

    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(5, 4)).sum().backward()  # train mode: BatchNorm's running stats change in place too
    opt.step()
    trained = weights_hash(net)
    assert trained != original and trained == full_hash(net.state_dict())

    net.load_state_dict(saved)  # copies into the same tensors in place
    assert weights_hash(net) == original


def test_a_copy_with_other_weights_gets_its_own_hash():
    net = _net()
    twin = copy.deepcopy(net)  # carries the cache along, but its tensors live elsewhere
    with torch.no_grad():
        twin[0].bias.fill_(0.5)
    assert weights_hash(twin) == full_hash(twin.state_dict()) != weights_hash(net)
    only_buffers = copy.deepcopy(net)
    only_buffers[1].running_mean += 1.0  # a buffer, not a parameter
    assert weights_hash(only_buffers) != weights_hash(net)
