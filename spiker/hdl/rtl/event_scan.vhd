-- event_scan: the input event scan of a layer. Combinational priority encoder:
-- the lowest set bit of `spikes` (found/idx) and the vector with that bit cleared.
-- A layer visits one present spike per cycle with it, so empty inputs cost nothing.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity event_scan is
  generic (
    N_IN : positive
  );
  port (
    spikes : in  std_logic_vector(N_IN - 1 downto 0);
    found  : out std_logic;
    idx    : out unsigned(clog2(N_IN) - 1 downto 0);
    rest   : out std_logic_vector(N_IN - 1 downto 0);
    last   : out std_logic  -- '1' when `rest` has no set bit
  );
end entity;

architecture rtl of event_scan is
begin
  process (spikes)
    variable f : std_logic;
    variable k : natural range 0 to N_IN - 1;
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
    r := spikes;
    r(k) := '0';
    found <= f;
    idx <= to_unsigned(k, idx'length);
    rest <= r;
    if unsigned(r) = 0 then
      last <= '1';
    else
      last <= '0';
    end if;
  end process;
end architecture;
