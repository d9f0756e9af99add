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
  -- x > 2**(nb-1) - 1 / x < -2**(nb-1) for x wider than nb bits (saturation tests, pure logic)
  function over_hi(x : signed; nb : natural) return std_logic;
  function over_lo(x : signed; nb : natural) return std_logic;
  -- signed v > c for a constant c >= 0, written as logic (no carry chain for a constant compare)
  function gt_const(v : signed; c : natural) return std_logic;
  -- leak(v, k) of an integer (constants): v - floor(v / 2**k); k < 0: v
  function leak_int(v : integer; k : integer) return integer;
  -- the leak shift a model uses (`if`: none); 1 when there is a leak (neuron_unit's VA -1), else 0
  function beta_of(model : natural; beta_shift : integer) return integer;
  function leak_one(k : integer) return integer;
  -- neuron_unit update phases per step: 2 (lif, if), 3 (syn)
  function update_phases(model : natural) return positive;
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

  function over_hi(x : signed; nb : natural) return std_logic is
    constant N : natural := x'length;
    variable y : signed(N - 1 downto 0);
    variable any : std_logic := '0';
  begin
    y := x;
    for i in nb - 1 to N - 2 loop
      any := any or y(i);
    end loop;
    return any and not y(N - 1);
  end function;

  function over_lo(x : signed; nb : natural) return std_logic is
    constant N : natural := x'length;
    variable y : signed(N - 1 downto 0);
    variable all1 : std_logic := '1';
  begin
    y := x;
    for i in nb - 1 to N - 2 loop
      all1 := all1 and y(i);
    end loop;
    return y(N - 1) and not all1;
  end function;

  function gt_const(v : signed; c : natural) return std_logic is
    constant N : natural := v'length;
    constant CB : unsigned(N - 1 downto 0) := to_unsigned(c, N);
    variable y : signed(N - 1 downto 0);
    variable gt : std_logic := '0';
    variable eq : std_logic := '1';
  begin
    y := v;
    -- c >= 0: a negative v is never greater; compare the magnitude bits MSB first
    for i in N - 2 downto 0 loop
      if CB(i) = '0' then
        gt := gt or (eq and y(i));
        eq := eq and not y(i);
      else
        eq := eq and y(i);
      end if;
    end loop;
    return gt and not y(N - 1);
  end function;

  function beta_of(model : natural; beta_shift : integer) return integer is
  begin
    if model = MODEL_IF then
      return NO_LEAK;
    end if;
    return beta_shift;
  end function;

  function leak_one(k : integer) return integer is
  begin
    if k >= 0 then
      return 1;
    end if;
    return 0;
  end function;

  function update_phases(model : natural) return positive is
  begin
    if model = MODEL_SYN then
      return 3;
    end if;
    return 2;
  end function;

  function leak_int(v : integer; k : integer) return integer is
    variable q : integer;
  begin
    if k < 0 then
      return v;
    end if;
    q := v / (2 ** k);
    if q * (2 ** k) > v then  -- VHDL division truncates; the shift floors
      q := q - 1;
    end if;
    return v - q;
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
