-- stream_out: one BITS-wide result word (a whole number of bytes) as W-bit AXI4-Stream beats.
-- Beat j carries bits j*W .. j*W+W-1 of the word; m_tkeep marks the bytes of the last beat
-- that belong to the word (all bytes of the other beats); m_tlast is set on the last beat.
-- A word is taken (in_ready) only while no beat is pending, so in_ready depends on registers.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity stream_out is
  generic (
    BITS : positive;   -- a multiple of 8
    W    : positive    -- a multiple of 8
  );
  port (
    clk, rst : in  std_logic;
    in_valid : in  std_logic;
    in_ready : out std_logic;
    in_data  : in  std_logic_vector(BITS - 1 downto 0);
    m_tvalid : out std_logic;
    m_tready : in  std_logic;
    m_tdata  : out std_logic_vector(W - 1 downto 0);
    m_tkeep  : out std_logic_vector(W / 8 - 1 downto 0);
    m_tlast  : out std_logic
  );
end entity;

architecture rtl of stream_out is
  constant BEATS : positive := (BITS + W - 1) / W;
  constant LAST_BYTES : positive := (BITS - (BEATS - 1) * W) / 8;
  signal word   : std_logic_vector(BEATS * W - 1 downto 0) := (others => '0');
  signal beat   : unsigned(clog2(BEATS + 1) - 1 downto 0) := (others => '0');
  signal busy   : std_logic := '0';
  signal final  : std_logic;
begin
  final <= '1' when beat = BEATS - 1 else '0';
  in_ready <= not busy;
  m_tvalid <= busy;
  m_tdata <= word(W - 1 downto 0);
  m_tlast <= final;
  keep : for b in 0 to W / 8 - 1 generate
    m_tkeep(b) <= '1' when final = '0' or b < LAST_BYTES else '0';
  end generate;

  process (clk)
  begin
    if rising_edge(clk) then
      if rst = '1' then
        busy <= '0';
        beat <= (others => '0');
      elsif busy = '0' then
        if in_valid = '1' then
          word <= (others => '0');
          word(BITS - 1 downto 0) <= in_data;
          busy <= '1';
          beat <= (others => '0');
        end if;
      elsif m_tready = '1' then
        if final = '1' then
          busy <= '0';
        else
          beat <= beat + 1;
        end if;
        if BEATS > 1 then
          word <= std_logic_vector(to_unsigned(0, W)) & word(BEATS * W - 1 downto W);
        end if;
      end if;
    end if;
  end process;
end architecture;
