-- event_scan: the input event scan of a layer (combinational).
-- The lowest set bit of `spikes` (found/idx) and, with EVENTS = 2, also the highest set
-- bit when it is another one (found2/idx2), and the vector with the picked bits cleared
-- (`rest`, `last` when it is empty). The lowest bit is isolated with the carry chain,
-- low = s and (not s + 1), the highest the same way on the reversed vector, and the
-- one-hot picks are encoded by OR trees: no priority chain, linear in N_IN (the carry
-- chain is the fast path of an FPGA). A layer visits EVENTS present spikes per cycle
-- with it, so empty inputs cost nothing.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity event_scan is
  generic (
    N_IN   : positive;
    EVENTS : positive range 1 to 2 := 1
  );
  port (
    spikes : in  std_logic_vector(N_IN - 1 downto 0);
    found  : out std_logic;
    idx    : out unsigned(clog2(N_IN) - 1 downto 0);
    found2 : out std_logic;  -- EVENTS = 2: a second (highest) set bit, other than idx
    idx2   : out unsigned(clog2(N_IN) - 1 downto 0);  -- EVENTS = 1: always 0
    rest   : out std_logic_vector(N_IN - 1 downto 0);
    last   : out std_logic;  -- '1' when `rest` has no set bit
    -- the picks one-hot (lowest; highest, all zero with EVENTS = 1): a caller that clears
    -- only one of them (snn_layer's groups)
    low_hot  : out std_logic_vector(N_IN - 1 downto 0);
    high_hot : out std_logic_vector(N_IN - 1 downto 0)
  );
end entity;

architecture rtl of event_scan is
  constant AW : positive := clog2(N_IN);

  function reversed(v : std_logic_vector) return std_logic_vector is
    variable r : std_logic_vector(v'length - 1 downto 0);
    variable x : std_logic_vector(v'length - 1 downto 0);
  begin
    x := v;
    for i in 0 to v'length - 1 loop
      r(i) := x(v'length - 1 - i);
    end loop;
    return r;
  end function;

  -- the lowest set bit of v, one-hot (all zero when v is)
  function lowest(v : std_logic_vector) return std_logic_vector is
    variable x : std_logic_vector(v'length - 1 downto 0);
  begin
    x := v;
    return x and std_logic_vector(unsigned(not x) + 1);
  end function;

  -- the index of the set bit of a one-hot vector (0 when none): bit b ORs the bits i whose
  -- index has bit b set, i.e. the upper half of each period of 2**(b+1) (counted with k:
  -- a simulation runs this at every scan, and 2**b / mod in the inner loop cost it ~3x)
  function encode(h : std_logic_vector; bits : positive) return unsigned is
    variable x : std_logic_vector(h'length - 1 downto 0);
    variable r : unsigned(bits - 1 downto 0) := (others => '0');
    variable p, k : natural;
  begin
    x := h;
    p := 1;
    for b in 0 to bits - 1 loop
      k := 0;
      for i in 0 to h'length - 1 loop
        if k >= p then
          r(b) := r(b) or x(i);
        end if;
        k := k + 1;
        if k = 2 * p then
          k := 0;
        end if;
      end loop;
      p := 2 * p;
    end loop;
    return r;
  end function;

  signal low, high, r1, r2 : std_logic_vector(N_IN - 1 downto 0);
begin
  low <= lowest(spikes);
  r1 <= spikes and not low;
  found <= '0' when unsigned(spikes) = 0 else '1';
  idx <= encode(low, AW);

  two : if EVENTS = 2 generate
    high <= reversed(lowest(reversed(spikes)));  -- in parallel with `low`
    r2 <= r1 and not high;
    found2 <= '0' when unsigned(r1) = 0 else '1';
    idx2 <= encode(high, AW);
  end generate;
  one : if EVENTS = 1 generate
    high <= (others => '0');
    r2 <= r1;
    found2 <= '0';
    idx2 <= (others => '0');
  end generate;

  rest <= r2;
  low_hot <= low;
  high_hot <= high;
  last <= '1' when unsigned(r2) = 0 else '0';
end architecture;
