"""Net dicts shared by tests."""

DIGITS_NET = {
    "n_cycles": 25, "n_inputs": 64,
    "layer_0": {"neuron_model": "lif", "n_neurons": 128, "alpha": None, "learn_alpha": False, "beta": 0.9375,
                "learn_beta": False, "threshold": 1.0, "learn_threshold": False, "reset_mechanism": "subtract"},
    "layer_1": {"neuron_model": "lif", "n_neurons": 10, "alpha": None, "learn_alpha": False, "beta": 0.9375,
                "learn_beta": False, "threshold": 1.0, "learn_threshold": False, "reset_mechanism": "none"},
}


def small_net(n_inputs=6, sizes=(5, 3), model="lif", reset="subtract", n_cycles=8, beta=0.75, alpha=0.5,
              threshold=1.0):
    net = {"n_cycles": n_cycles, "n_inputs": n_inputs}
    for i, n in enumerate(sizes):
        layer = {"neuron_model": model, "n_neurons": n, "threshold": threshold, "reset_mechanism": reset}
        if model != "if":
            layer["beta"] = beta
        if model == "syn":
            layer["alpha"] = alpha
        net[f"layer_{i}"] = layer
    return net
