-- uart_board_top: the accelerator behind a UART, for a board (ULX3S: boards/ulx3s.lpf).
-- The host sends each sample as N_CYCLES steps of ceil(N_INPUTS / 8) bytes (input 8k+b in bit b
-- of a step's byte k: spiker.board.encode); after a sample's last byte the board sends back the
-- result word of spiker_top as TDATA_BITS / 8 bytes, low byte first (class counts, then the
-- predicted class: spiker.board.decode), and shows its top byte on the LEDs.
-- Samples may follow each other without a pause: a step waits in the 8-bit stream adapter far
-- shorter than a byte takes on the line, so no byte is lost. A power-on reset holds the
-- design for 16 cycles; the button (active high) resets it too.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;
use work.spiker_net_pkg.all;

entity uart_board_top is
  generic (CLKS_PER_BIT : positive := 217);  -- 25 MHz / 115200 baud
  port (
    clk_25mhz : in  std_logic;
    btn_rst   : in  std_logic;
    ftdi_txd  : in  std_logic;   -- the FTDI chip transmits, the FPGA receives
    ftdi_rxd  : out std_logic;   -- the FPGA transmits
    led       : out std_logic_vector(7 downto 0)
  );
end entity;

architecture rtl of uart_board_top is
  constant BYTES_PER_SAMPLE : positive := N_CYCLES * ((N_INPUTS + 7) / 8);
  signal por     : unsigned(4 downto 0) := (others => '0');
  signal rst     : std_logic := '1';
  signal rx_valid, rx_last : std_logic;
  signal rx_data : std_logic_vector(7 downto 0);
  signal count   : unsigned(clog2(BYTES_PER_SAMPLE + 1) - 1 downto 0) := (others => '0');
  signal s_ready : std_logic;
  signal m_valid, m_ready, m_last : std_logic;
  signal m_data  : std_logic_vector(7 downto 0);
  signal m_keep  : std_logic_vector(0 downto 0);
  signal shown   : std_logic_vector(7 downto 0) := (others => '0');
begin
  process (clk_25mhz)
  begin
    if rising_edge(clk_25mhz) then
      if por(4) = '0' then
        por <= por + 1;
      end if;
      rst <= not por(4) or btn_rst;
    end if;
  end process;

  u_uart_rx : entity work.uart_rx
    generic map (CLKS_PER_BIT => CLKS_PER_BIT)
    port map (clk => clk_25mhz, rst => rst, rx => ftdi_txd, out_valid => rx_valid, out_data => rx_data);

  rx_last <= '1' when count = BYTES_PER_SAMPLE - 1 else '0';

  process (clk_25mhz)
  begin
    if rising_edge(clk_25mhz) then
      if rst = '1' then
        count <= (others => '0');
      elsif rx_valid = '1' then
        if rx_last = '1' then
          count <= (others => '0');
        else
          count <= count + 1;
        end if;
      end if;
    end if;
  end process;

  u_stream : entity work.spiker_stream_top
    port map (clk => clk_25mhz, rst => rst,
              s_axis_tvalid => rx_valid, s_axis_tready => s_ready, s_axis_tdata => rx_data,
              s_axis_tlast => rx_last, m_axis_tvalid => m_valid, m_axis_tready => m_ready,
              m_axis_tdata => m_data, m_axis_tkeep => m_keep, m_axis_tlast => m_last);

  u_uart_tx : entity work.uart_tx
    generic map (CLKS_PER_BIT => CLKS_PER_BIT)
    port map (clk => clk_25mhz, rst => rst, in_valid => m_valid, in_ready => m_ready, in_data => m_data,
              tx => ftdi_rxd);

  -- the LEDs show the last result byte sent (the word's top byte, which holds the predicted class)
  process (clk_25mhz)
  begin
    if rising_edge(clk_25mhz) then
      if rst = '1' then
        shown <= (others => '0');
      elsif m_valid = '1' and m_ready = '1' and m_last = '1' then
        shown <= m_data;
      end if;
    end if;
  end process;
  led <= shown;
end architecture;
