-- uart_tx: 8N1 serial transmitter, LSB first, CLKS_PER_BIT clock cycles a bit. A byte is
-- taken (in_valid and in_ready) only while the line is idle; the line idles high.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity uart_tx is
  generic (CLKS_PER_BIT : positive);
  port (
    clk, rst : in  std_logic;
    in_valid : in  std_logic;
    in_ready : out std_logic;
    in_data  : in  std_logic_vector(7 downto 0);
    tx       : out std_logic
  );
end entity;

architecture rtl of uart_tx is
  signal busy  : std_logic := '0';
  signal timer : unsigned(clog2(CLKS_PER_BIT + 1) downto 0) := (others => '0');
  signal bitn  : unsigned(3 downto 0) := (others => '0');
  signal frame : std_logic_vector(9 downto 0) := (others => '1');  -- stop & data & start, LSB out first
begin
  in_ready <= not busy;
  tx <= frame(0);

  process (clk)
  begin
    if rising_edge(clk) then
      if rst = '1' then
        busy <= '0';
        frame <= (others => '1');
      elsif busy = '0' then
        if in_valid = '1' then
          frame <= '1' & in_data & '0';
          busy <= '1';
          bitn <= (others => '0');
          timer <= to_unsigned(CLKS_PER_BIT - 1, timer'length);
        end if;
      elsif timer /= 0 then
        timer <= timer - 1;
      else
        timer <= to_unsigned(CLKS_PER_BIT - 1, timer'length);
        frame <= '1' & frame(9 downto 1);
        if bitn = 9 then
          busy <= '0';
        else
          bitn <= bitn + 1;
        end if;
      end if;
    end if;
  end process;
end architecture;
