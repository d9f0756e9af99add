-- uart_rx: 8N1 serial receiver, LSB first. The line is synchronised (two flip-flops); a start
-- bit is confirmed at its middle and every data bit sampled at its middle, CLKS_PER_BIT
-- clock cycles apart. out_valid pulses for one cycle with the byte after its stop bit's middle.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity uart_rx is
  generic (CLKS_PER_BIT : positive);  -- clock frequency / baud rate, at least 4
  port (
    clk, rst  : in  std_logic;
    rx        : in  std_logic;
    out_valid : out std_logic;
    out_data  : out std_logic_vector(7 downto 0)
  );
end entity;

architecture rtl of uart_rx is
  signal sync   : std_logic_vector(1 downto 0) := "11";
  signal busy   : std_logic := '0';
  signal timer  : unsigned(clog2(CLKS_PER_BIT + 1) downto 0) := (others => '0');
  signal bitn   : unsigned(3 downto 0) := (others => '0');  -- 0 start, 1..8 data, 9 stop
  signal shreg  : std_logic_vector(7 downto 0) := (others => '0');
  signal valid  : std_logic := '0';
begin
  out_valid <= valid;
  out_data <= shreg;

  process (clk)
  begin
    if rising_edge(clk) then
      sync <= sync(0) & rx;
      valid <= '0';
      if rst = '1' then
        busy <= '0';
        sync <= "11";
      elsif busy = '0' then
        if sync(1) = '0' then  -- a falling edge: wait half a bit, then check the start bit
          busy <= '1';
          bitn <= (others => '0');
          timer <= to_unsigned(CLKS_PER_BIT / 2 - 1, timer'length);
        end if;
      elsif timer /= 0 then
        timer <= timer - 1;
      else
        timer <= to_unsigned(CLKS_PER_BIT - 1, timer'length);
        if bitn = 0 then
          if sync(1) = '1' then
            busy <= '0';  -- a glitch, not a start bit
          end if;
          bitn <= bitn + 1;
        elsif bitn <= 8 then
          shreg <= sync(1) & shreg(7 downto 1);
          bitn <= bitn + 1;
        else
          busy <= '0';
          if sync(1) = '1' then  -- a byte only with a valid stop bit
            valid <= '1';
          end if;
        end if;
      end if;
    end if;
  end process;
end architecture;
