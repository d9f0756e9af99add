-- neuron_unit: the N neurons of the fully parallel layer, each a lean sequential datapath.
--
-- One wide register x (ACC bits) per neuron and ONE adder x + b, b chosen by a small mux
-- (a weight, the leak term, or a constant); zeroing uses the register's synchronous reset.
-- The golden model's step (docs/fixed-point.md) is computed in an exactly equal order:
-- x holds  leak(v(t-1)) - r(t)*thr  (or the zero-reset variant) when step t starts, the
-- event cycles add the step's weights into it (an exact sum), and the update phases do
--   VA: v = sat(x), spike = v > thr; x := x - (x >> k) - 1  (x := 0 when x saturated,
--       and for the zero reset when the neuron spiked)
--   VB: x := x + C, C a constant: 1 - spike*thr, or leak(HI) - spike*thr / leak(LO)
--       after a saturated update (x was zeroed), 0 after a zero reset; x := 0 on `clear`.
-- so x = leak(v) - spike*thr again. `if` neurons have no leak (VA adds nothing, C has no +1).
-- syn: a second register y (ACC bits) takes the weights instead; phase U0 adds
-- c = sat(y) into x (or zeroes x when the previous spike zero-resets it) and leaks y the
-- same way (y := y - (y >> ka) - 1, then + 1 or the saturated constant in U1); VA/VB are
-- then U1/U2. Phases: lif/if U1 = VA, U2 = VB; syn U1 = syn, U2 = VA, U3 = VB
-- (update_phases in spiker_pkg). The property test tests/test_hdl_datapath.py proves this
-- order equal to the golden model; tests/rtl checks this entity against it.
-- Width: |leak(v) - thr| <= 2**NB and the step's weights add at most n*2**(WB-1) in
-- magnitude, so x (ACC = the golden accumulator_bits) never wraps.
-- Simulation speed: all N neurons are one clocked process, a register x is one integer
-- signal (ACC bits when synthesized) and the weights are added as integers, so GHDL updates
-- N scalar signals an event cycle instead of N*ACC std_logic ones through N processes; the
-- update phases take the same bit-level logic as before on to_signed(x) (free wiring).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity neuron_unit is
  generic (
    N           : positive := 1;               -- neurons
    NB          : positive;
    ACC         : positive range 2 to 31;      -- register bits (an integer's range)
    WB          : positive;
    MODEL       : natural := MODEL_LIF;
    RESET       : natural := RESET_SUBTRACT;
    BETA_SHIFT  : integer := NO_LEAK;
    ALPHA_SHIFT : integer := NO_LEAK;
    THRESHOLD   : natural;
    EVENTS      : positive range 1 to 2 := 1;
    -- true: a sum register between the rows and the neurons: each cycle it takes
    -- w1 (+ w2 with EVENTS = 2), WB + EVENTS - 1 bits a neuron, no reset, and an event
    -- cycle (add1; leave add2 '0') adds the sum it holds, one adder a register
    SUM_REG     : boolean := false
  );
  port (
    clk   : in  std_logic;
    rst   : in  std_logic;
    add1  : in  std_logic;                     -- event cycle: add w1
    add2  : in  std_logic := '0';              -- event cycle: add w2 (EVENTS = 2)
    -- neuron j's weight in bits (j + 1) * WB - 1 downto j * WB (a weight ROM row)
    w1    : in  std_logic_vector(N * WB - 1 downto 0);
    w2    : in  std_logic_vector(N * WB - 1 downto 0) := (others => '0');
    u     : in  std_logic_vector(1 to 3);      -- update phase k is active (at most one)
    clear : in  std_logic;                     -- with the last phase: restart at zero
    fresh : in  std_logic;                     -- this update is a sample's first step
    spike : out std_logic_vector(N - 1 downto 0);
    -- neuron j's v(t) (valid after VA) and syn current c(t) (valid after U1), NB bits each
    v_dbg : out std_logic_vector(N * NB - 1 downto 0) := (others => '0');
    s_dbg : out std_logic_vector(N * NB - 1 downto 0) := (others => '0')
  );
end entity;

architecture rtl of neuron_unit is
  constant SYN   : boolean := MODEL = MODEL_SYN;
  constant BK    : integer := beta_of(MODEL, BETA_SHIFT);
  constant HI    : integer := 2 ** (NB - 1) - 1;
  constant LO    : integer := -(2 ** (NB - 1));
  constant SUB   : boolean := RESET = RESET_SUBTRACT;
  -- lif/if zero reset: a spike zeroes the next start; syn zero: the previous spike zeroes v
  constant ZNOW  : boolean := RESET = RESET_ZERO and not SYN;
  constant HI_SPIKES : boolean := HI > THRESHOLD;  -- a saturated-high membrane spikes
  constant ONE   : integer := leak_one(BK);        -- the -1 of VA's leak, undone in VB
  function hi_const return integer is
  begin
    if ZNOW and HI_SPIKES then
      return 0;
    elsif SUB and HI_SPIKES then
      return leak_int(HI, BK) - THRESHOLD;
    end if;
    return leak_int(HI, BK);
  end function;
  constant K_HI  : integer := hi_const;
  constant K_LO  : integer := leak_int(LO, BK);
  function spike_const return integer is
  begin
    if ZNOW then
      return 0;
    elsif SUB then
      return ONE - THRESHOLD;
    end if;
    return ONE;
  end function;
  constant C_S   : integer := spike_const;   -- VB constant after a spike (not saturated)
  constant C_N   : integer := ONE;     -- VB constant without a spike (not saturated)

  -- syn current: the same sequence on y with alpha
  constant AK    : integer := ALPHA_SHIFT;
  constant A_ONE : integer := leak_one(AK);
  constant KA_HI : integer := leak_int(HI, AK);
  constant KA_LO : integer := leak_int(LO, AK);

  function phase_a return natural is
  begin
    if SYN then
      return 2;
    end if;
    return 1;
  end function;
  constant PA : natural := phase_a;      -- VA
  constant PB : natural := phase_a + 1;  -- VB (the last phase)

  subtype reg_t is integer range -(2 ** (ACC - 1)) to 2 ** (ACC - 1) - 1;
  type reg_array is array (0 to N - 1) of reg_t;
  constant SW    : positive := WB + EVENTS - 1;          -- the sum register's width
  subtype sum_t is integer range -(2 ** (SW - 1)) to 2 ** (SW - 1) - 1;
  type sum_array is array (0 to N - 1) of sum_t;
  constant TWO   : boolean := EVENTS = 2 and not SUM_REG;  -- two weights added a cycle
  signal x, y : reg_array := (others => 0);
  signal spk, fsat, fhi, ysat, yhi : std_logic_vector(N - 1 downto 0) := (others => '0');

  -- the signed integer of bits lo + w - 1 downto lo of v (above v'low): to_integer(signed(..))
  -- written as a loop over the bits. GHDL synthesizes both to the same wiring, but numeric_std's
  -- to_integer costs ~10-50x more simulation time, and this runs for every neuron every cycle
  function int_of(v : std_logic_vector; lo, w : natural) return integer is
    constant L : natural := v'low + lo;
    variable r : integer;
  begin
    if v(L + w - 1) = '1' then
      r := -1;
    else
      r := 0;
    end if;
    for b in w - 2 downto 0 loop
      if v(L + b) = '1' then
        r := 2 * r + 1;
      else
        r := 2 * r;
      end if;
    end loop;
    return r;
  end function;
  -- neuron j's weight of a row
  function weight(row : std_logic_vector; j : natural) return integer is
  begin
    return int_of(row, j * WB, WB);
  end function;
  -- x - (x >> k) - 1 = x + not(x >> k)
  function leak_term(v : signed; k : natural) return integer is
  begin
    return int_of(std_logic_vector(not asr(v, k)), 0, v'length);
  end function;
  function nb_bits(v : integer) return std_logic_vector is
  begin
    return std_logic_vector(to_signed(v, NB));
  end function;
begin
  process (clk)
    -- the sum register (SUM_REG): a variable read (last cycle's sum) before it is written
    variable q : sum_array := (others => 0);
    variable e1, e2 : integer;                 -- an event cycle's terms
    variable b1, b2, c : integer;
    variable xs, ys : signed(ACC - 1 downto 0);
    variable oh, ol, s, zr, en, dir : std_logic;
  begin
    if rising_edge(clk) then
      if rst = '1' then
        x <= (others => 0);
        y <= (others => 0);
        spk <= (others => '0');
        fsat <= (others => '0');
        fhi <= (others => '0');
        ysat <= (others => '0');
        yhi <= (others => '0');
      else
        for j in 0 to N - 1 loop
          -- the event terms: the rows' weights, or the sum register's
          e1 := 0;
          e2 := 0;
          if SUM_REG then
            if add1 = '1' then
              e1 := q(j);
            end if;
          else
            if add1 = '1' then
              e1 := weight(w1, j);
            end if;
            if EVENTS = 2 and add2 = '1' then
              e2 := weight(w2, j);
            end if;
          end if;
          -- membrane register x: x := 0 (zr) or x := x + b1 (+ b2) (en)
          b1 := 0;
          b2 := 0;
          zr := '0';
          en := '0';
          if not SYN then
            b1 := e1;
            b2 := e2;
            en := add1 or add2;
          end if;
          if SYN and u(1) = '1' then
            -- c(t) = sat(y) enters the membrane; a zero reset after a spike gives v = 0
            ys := to_signed(y(j), ACC);
            oh := over_hi(ys, NB);
            ol := over_lo(ys, NB);
            c := y(j);
            if oh = '1' then
              c := HI;
            elsif ol = '1' then
              c := LO;
            end if;
            s_dbg(j * NB + NB - 1 downto j * NB) <= nb_bits(c);
            b1 := c;
            en := '1';
            if RESET = RESET_ZERO and spk(j) = '1' and fresh = '0' then
              zr := '1';
            end if;
          end if;
          if u(PA) = '1' then
            xs := to_signed(x(j), ACC);
            oh := over_hi(xs, NB);
            ol := over_lo(xs, NB);
            -- saturated high: v = HI spikes only when HI > thr; saturated low never spikes
            s := not ol and gt_const(xs(NB - 1 downto 0), THRESHOLD) and not oh;
            if HI_SPIKES then
              s := s or oh;
            end if;
            spk(j) <= s;
            fsat(j) <= oh or ol;
            fhi(j) <= oh;
            if oh = '1' then
              v_dbg(j * NB + NB - 1 downto j * NB) <= nb_bits(HI);
            elsif ol = '1' then
              v_dbg(j * NB + NB - 1 downto j * NB) <= nb_bits(LO);
            else
              v_dbg(j * NB + NB - 1 downto j * NB) <= std_logic_vector(xs(NB - 1 downto 0));
            end if;
            zr := oh or ol;
            if ZNOW then
              zr := zr or s;
            end if;
            if BK >= 0 then
              b1 := leak_term(xs, BK);   -- x - (x >> k) - 1
              en := '1';
            end if;
          end if;
          if u(PB) = '1' then
            if HI_SPIKES then
              dir := spk(j);
            else
              dir := fhi(j);
            end if;
            if fsat(j) = '1' and dir = '1' then
              b1 := K_HI;
            elsif fsat(j) = '1' then
              b1 := K_LO;
            elsif spk(j) = '1' then
              b1 := C_S;
            else
              b1 := C_N;
            end if;
            en := '1';
            zr := clear;
          end if;
          if zr = '1' then
            x(j) <= 0;
          elsif en = '1' then
            if TWO and not SYN then
              x(j) <= x(j) + b1 + b2;
            else
              x(j) <= x(j) + b1;
            end if;
          end if;

          -- syn current register y: the weights, then its own leak and saturation
          if SYN then
            b1 := 0;
            b2 := 0;
            zr := '0';
            en := '0';
            b1 := e1;
            b2 := e2;
            en := add1 or add2;
            if u(1) = '1' then
              ys := to_signed(y(j), ACC);
              oh := over_hi(ys, NB);
              ol := over_lo(ys, NB);
              ysat(j) <= oh or ol;
              yhi(j) <= oh;
              zr := oh or ol;
              if AK >= 0 then
                b1 := leak_term(ys, AK);
                en := '1';
              end if;
            end if;
            if u(2) = '1' then
              if ysat(j) = '1' and yhi(j) = '1' then
                b1 := KA_HI;
              elsif ysat(j) = '1' then
                b1 := KA_LO;
              else
                b1 := A_ONE;
              end if;
              en := '1';
            end if;
            if u(PB) = '1' and clear = '1' then
              zr := '1';
            end if;
            if zr = '1' then
              y(j) <= 0;
            elsif en = '1' then
              if TWO then
                y(j) <= y(j) + b1 + b2;
              else
                y(j) <= y(j) + b1;
              end if;
            end if;
          end if;
        end loop;
      end if;
      if SUM_REG then
        for j in 0 to N - 1 loop
          if EVENTS = 2 then
            q(j) := weight(w1, j) + weight(w2, j);
          else
            q(j) := weight(w1, j);
          end if;
        end loop;
      end if;
    end if;
  end process;

  spike <= spk;
end architecture;
