-- spiker_pkg: shared helpers of the Spiker RTL library (VHDL-2008, vendor-neutral).
-- The arithmetic is the golden model's (spiker/golden/model.py, docs/fixed-point.md).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;

package spiker_pkg is
  -- neuron models and reset mechanisms (generic codes)
  constant MODEL_LIF : natural := 0;
  constant MODEL_SYN : natural := 1;
  constant MODEL_IF  : natural := 2;
  constant RESET_SUBTRACT : natural := 0;
  constant RESET_ZERO     : natural := 1;
  constant RESET_NONE     : natural := 2;
  constant NO_LEAK : integer := -1;

  -- ceil(log2(n)), at least 1
  function clog2(n : natural) return natural;
  -- arithmetic shift right by a constant k (sign bits shift in)
  function asr(v : signed; k : natural) return signed;
  -- v - (v >> k) with an arithmetic shift; k < 0: no leak
  function leak(v : signed; k : integer) return signed;
  -- clamp x to a signed width of nb bits
  function saturate(x : signed; nb : natural) return signed;
  -- one neuron's step update, exactly the golden model's (see neuron_update.vhd);
  -- v_out/s_out are nb bits wide, i_in is the exact input current
  procedure neuron_step(v_in, s_in : in signed; r_in : in std_logic; i_in : in signed;
                        nb : in positive; model, reset : in natural; beta_shift, alpha_shift : in integer;
                        threshold : in natural;
                        v_out, s_out : out signed; spike : out std_logic);
end package;

package body spiker_pkg is
  function clog2(n : natural) return natural is
    variable r : natural := 1;
  begin
    while (2 ** r) < n loop
      r := r + 1;
    end loop;
    return r;
  end function;

  -- Written as wiring rather than numeric_std's shift_right: GHDL 2.0.0's synthesis
  -- (ghdl synth --out=verilog) shifts a negative signed value logically.
  function asr(v : signed; k : natural) return signed is
    constant N : natural := v'length;
    variable x : signed(N - 1 downto 0);
    variable r : signed(N - 1 downto 0);
  begin
    x := v;
    for i in 0 to N - 1 loop
      if i + k <= N - 1 then
        r(i) := x(i + k);
      else
        r(i) := x(N - 1);
      end if;
    end loop;
    return r;
  end function;

  function leak(v : signed; k : integer) return signed is
  begin
    if k < 0 then
      return v;
    end if;
    return v - asr(v, k);
  end function;

  function saturate(x : signed; nb : natural) return signed is
    -- 2**(nb-1) - 1 and its complement -2**(nb-1), at the width of x (>= nb)
    constant HI : signed(x'length - 1 downto 0) := shift_left(to_signed(1, x'length), nb - 1) - 1;
    constant LO : signed(x'length - 1 downto 0) := not HI;
  begin
    if x > HI then
      return resize(HI, nb);
    elsif x < LO then
      return resize(LO, nb);
    end if;
    return resize(x, nb);
  end function;

  procedure neuron_step(v_in, s_in : in signed; r_in : in std_logic; i_in : in signed;
                        nb : in positive; model, reset : in natural; beta_shift, alpha_shift : in integer;
                        threshold : in natural;
                        v_out, s_out : out signed; spike : out std_logic) is
    constant WW : positive := maximum(i_in'length, nb) + 3;
    constant THR : signed(WW - 1 downto 0) := to_signed(threshold, WW);
    variable drive : signed(WW - 1 downto 0);
    variable lv    : signed(WW - 1 downto 0);
    variable x     : signed(WW - 1 downto 0);
    variable s_new : signed(nb - 1 downto 0);
    variable v_new : signed(nb - 1 downto 0);
  begin
    drive := resize(i_in, WW);
    s_new := (others => '0');
    if model = MODEL_SYN then
      s_new := saturate(leak(resize(s_in, WW), alpha_shift) + drive, nb);
      drive := resize(s_new, WW);
    end if;
    if model = MODEL_IF then
      lv := resize(v_in, WW);
    else
      lv := leak(resize(v_in, WW), beta_shift);
    end if;
    if reset = RESET_SUBTRACT then
      x := lv + drive;
      if r_in = '1' then
        x := x - THR;
      end if;
      v_new := saturate(x, nb);
    elsif reset = RESET_ZERO and model = MODEL_SYN then
      if r_in = '1' then
        v_new := (others => '0');
      else
        v_new := saturate(lv + drive, nb);
      end if;
    elsif reset = RESET_ZERO then
      if r_in = '1' then
        lv := (others => '0');
      end if;
      v_new := saturate(lv + drive, nb);
    else
      v_new := saturate(lv + drive, nb);
    end if;
    v_out := v_new;
    s_out := s_new;
    if resize(v_new, WW) > THR then
      spike := '1';
    else
      spike := '0';
    end if;
  end procedure;
end package body;
