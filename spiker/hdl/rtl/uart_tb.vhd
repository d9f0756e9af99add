-- uart_tb: uart_board_top driven over its serial line from a byte file (spiker.board.simulate_uart).
-- STIM: first line "<bytes> <samples>", then one byte value (0..255) per line, sent 8N1 on
--       ftdi_txd at CLKS_PER_BIT clock cycles a bit, back to back.
-- RESULTS: every byte received on ftdi_rxd, one value per line, then "DONE <cycles>" once
--       samples * TDATA_BITS / 8 bytes came back, or "TIMEOUT <cycles>" after MAX_CYCLES.
-- TRACE is accepted for the simulator's common command line and ignored.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use std.textio.all;
use work.spiker_net_pkg.all;

entity uart_tb is
  generic (
    STIM         : string := "stim.txt";
    RESULTS      : string := "results.txt";
    TRACE        : boolean := false;
    MAX_CYCLES   : natural := 10000000;
    CLKS_PER_BIT : positive := 4
  );
end entity;

architecture sim of uart_tb is
  signal clk  : std_logic := '0';
  signal done : boolean := false;
  signal cyc  : natural := 0;
  signal txd  : std_logic := '1';  -- host -> board
  signal rxd  : std_logic;         -- board -> host
  signal led  : std_logic_vector(7 downto 0);
  signal expected : natural := 0;
  file res_f : text open write_mode is RESULTS;
begin
  clk <= not clk after 5 ns when not done;

  count : process (clk)
  begin
    if rising_edge(clk) then
      cyc <= cyc + 1;
    end if;
  end process;

  dut : entity work.uart_board_top
    generic map (CLKS_PER_BIT => CLKS_PER_BIT)
    port map (clk_25mhz => clk, btn_rst => '0', ftdi_txd => txd, ftdi_rxd => rxd, led => led);

  send : process
    file stim_f : text open read_mode is STIM;
    variable l : line;
    variable n, samples, value : integer;
    variable frame : std_logic_vector(9 downto 0);
  begin
    readline(stim_f, l);
    read(l, n);
    read(l, samples);
    expected <= samples * (TDATA_BITS / 8);
    for k in 1 to 40 loop  -- past the power-on reset
      wait until rising_edge(clk);
    end loop;
    for i in 1 to n loop
      readline(stim_f, l);
      read(l, value);
      frame := '1' & std_logic_vector(to_unsigned(value, 8)) & '0';
      for b in 0 to 9 loop
        txd <= frame(b);
        for k in 1 to CLKS_PER_BIT loop
          wait until rising_edge(clk);
        end loop;
      end loop;
    end loop;
    wait;
  end process;

  receive : process
    variable o : line;
    variable byte : std_logic_vector(7 downto 0);
    variable got : natural := 0;
  begin
    wait until expected > 0;
    while got < expected loop
      wait until falling_edge(rxd) or cyc > MAX_CYCLES;
      if cyc > MAX_CYCLES then
        write(o, string'("TIMEOUT "));
        write(o, cyc);
        writeline(res_f, o);
        done <= true;
        wait;
      end if;
      for k in 1 to CLKS_PER_BIT + CLKS_PER_BIT / 2 loop  -- to the middle of data bit 0
        wait until rising_edge(clk);
      end loop;
      for b in 0 to 7 loop
        byte(b) := rxd;
        for k in 1 to CLKS_PER_BIT loop
          wait until rising_edge(clk);
        end loop;
      end loop;
      write(o, to_integer(unsigned(byte)));
      writeline(res_f, o);
      got := got + 1;
    end loop;
    write(o, string'("DONE "));
    write(o, cyc);
    writeline(res_f, o);
    done <= true;
    wait;
  end process;
end architecture;
