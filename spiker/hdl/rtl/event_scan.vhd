-- event_scan: the input event scan of a layer. Combinational priority encoder:
-- the lowest set bit of `spikes` (found/idx) and, with EVENTS = 2, also the highest
-- set bit when it is another one (found2/idx2), and the vector with the picked bits
-- cleared (`rest`). The two encoders work in parallel (no chain through the first
-- pick). A layer visits EVENTS present spikes per cycle with it, so empty inputs cost
-- nothing.
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
    last   : out std_logic  -- '1' when `rest` has no set bit
  );
end entity;

architecture rtl of event_scan is
begin
  process (spikes)
    variable f, f2 : std_logic;
    variable k, h : natural range 0 to N_IN - 1;
    variable r : std_logic_vector(N_IN - 1 downto 0);
  begin
    f := '0';
    k := 0;
    for i in N_IN - 1 downto 0 loop
      if spikes(i) = '1' then
        f := '1';
        k := i;
      end if;
    end loop;
    h := 0;
    if EVENTS = 2 then
      for i in 0 to N_IN - 1 loop
        if spikes(i) = '1' then
          h := i;
        end if;
      end loop;
    end if;
    r := spikes;
    r(k) := '0';
    f2 := '0';
    if EVENTS = 2 and h /= k then
      f2 := '1';
      r(h) := '0';
    end if;
    found <= f;
    idx <= to_unsigned(k, idx'length);
    found2 <= f2;
    idx2 <= to_unsigned(h, idx2'length);
    rest <= r;
    if unsigned(r) = 0 then
      last <= '1';
    else
      last <= '0';
    end if;
  end process;
end architecture;
