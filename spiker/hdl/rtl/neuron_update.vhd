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
  constant WW  : positive := maximum(ACC, NB) + 3;
  constant THR : signed(WW - 1 downto 0) := to_signed(THRESHOLD, WW);
begin
  process (v_in, s_in, r_in, i_in)
    variable drive : signed(WW - 1 downto 0);
    variable lv    : signed(WW - 1 downto 0);
    variable x     : signed(WW - 1 downto 0);
    variable s_new : signed(NB - 1 downto 0);
    variable v_new : signed(NB - 1 downto 0);
  begin
    drive := resize(i_in, WW);
    s_new := (others => '0');
    if MODEL = MODEL_SYN then
      s_new := saturate(leak(resize(s_in, WW), ALPHA_SHIFT) + drive, NB);
      drive := resize(s_new, WW);
    end if;
    if MODEL = MODEL_IF then
      lv := resize(v_in, WW);
    else
      lv := leak(resize(v_in, WW), BETA_SHIFT);
    end if;
    if RESET = RESET_SUBTRACT then
      x := lv + drive;
      if r_in = '1' then
        x := x - THR;
      end if;
      v_new := saturate(x, NB);
    elsif RESET = RESET_ZERO and MODEL = MODEL_SYN then
      if r_in = '1' then
        v_new := (others => '0');
      else
        v_new := saturate(lv + drive, NB);
      end if;
    elsif RESET = RESET_ZERO then
      if r_in = '1' then
        lv := (others => '0');
      end if;
      v_new := saturate(lv + drive, NB);
    else
      v_new := saturate(lv + drive, NB);
    end if;
    v_out <= v_new;
    s_out <= s_new;
    if resize(v_new, WW) > THR then
      spike <= '1';
    else
      spike <= '0';
    end if;
  end process;
end architecture;
