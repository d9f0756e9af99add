-- neuron_update: one neuron's step update (combinational), exactly the golden model's:
--   lif/if  subtract: v' = sat(leak_b(v) + I - r*thr)
--           zero:     v' = sat((r ? 0 : leak_b(v)) + I)
--           none:     v' = sat(leak_b(v) + I)
--   syn     s' = sat(leak_a(s) + I), then with d = s':
--           subtract: v' = sat(leak_b(v) + d - r*thr)
--           zero:     v' = r ? 0 : sat(leak_b(v) + d)
--           none:     v' = sat(leak_b(v) + d)
--   spike = v' > thr (strict). leak(x, k) = x - (x >> k); `if` has no leak.
-- I is the exact sum of the active inputs' weights (ACC bits); saturation happens once.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity neuron_update is
  generic (
    NB          : positive;               -- neurons_bw (membrane, synapse width)
    ACC         : positive;               -- width of the input current I
    MODEL       : natural := MODEL_LIF;
    RESET       : natural := RESET_SUBTRACT;
    BETA_SHIFT  : integer := NO_LEAK;
    ALPHA_SHIFT : integer := NO_LEAK;
    THRESHOLD   : natural
  );
  port (
    v_in   : in  signed(NB - 1 downto 0);
    s_in   : in  signed(NB - 1 downto 0);
    r_in   : in  std_logic;               -- own spike of the previous step
    i_in   : in  signed(ACC - 1 downto 0);
    v_out  : out signed(NB - 1 downto 0);
    s_out  : out signed(NB - 1 downto 0);
    spike  : out std_logic
  );
end entity;

architecture rtl of neuron_update is
begin
  process (v_in, s_in, r_in, i_in)
    variable v_new, s_new : signed(NB - 1 downto 0);
    variable spk : std_logic;
  begin
    neuron_step(v_in, s_in, r_in, i_in, NB, MODEL, RESET, BETA_SHIFT, ALPHA_SHIFT, THRESHOLD, v_new, s_new, spk);
    v_out <= v_new;
    s_out <= s_new;
    spike <= spk;
  end process;
end architecture;
