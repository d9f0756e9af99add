  -- $name: $model, reset $reset, $n_in inputs -> $n_out neurons
  constant ${P}_N_IN      : positive := $n_in;
  constant ${P}_N_OUT     : positive := $n_out;
  constant ${P}_ACC       : positive := $acc;
  -- neuron register width of the fully parallel layer (register_bits: this layer's weights)
  constant ${P}_REG       : positive := $reg;
  constant ${P}_THRESHOLD : natural := $thr;
  constant ${P}_BETA      : integer := $beta;
  constant ${P}_ALPHA     : integer := $alpha;
  -- neuron update units (P = N_OUT: fully parallel snn_layer, else snn_layer_tm)
  constant ${P}_NEURONS_PER_CYCLE : positive := $npc;
  -- ${P}_WEIGHTS(i * ${P}_N_OUT + j): weight from input i to neuron j
  constant ${P}_WEIGHTS   : integer_vector(0 to $n_w - 1) := $weights;
