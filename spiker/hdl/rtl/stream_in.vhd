-- stream_in: a time step of N_IN spikes from a W-bit AXI4-Stream (ceil(N_IN / W) beats a step).
-- Beat j of a step carries inputs j*W .. j*W+W-1 (bit b of tdata = input j*W+b); the bits of
-- the last beat above N_IN are ignored. s_tlast on a step's last beat marks the sample's last
-- step (on other beats it is ignored). The next step's beats are gathered while the current
-- one waits in the output register, so the adapter keeps pace with the input when the core is
-- faster; s_tready depends on registers only.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity stream_in is
  generic (
    N_IN : positive;
    W    : positive
  );
  port (
    clk, rst  : in  std_logic;
    s_tvalid  : in  std_logic;
    s_tready  : out std_logic;
    s_tdata   : in  std_logic_vector(W - 1 downto 0);
    s_tlast   : in  std_logic;
    out_valid : out std_logic;
    out_ready : in  std_logic;
    out_data  : out std_logic_vector(N_IN - 1 downto 0);
    out_last  : out std_logic
  );
end entity;

architecture rtl of stream_in is
  constant BEATS : positive := (N_IN + W - 1) / W;
  signal gather  : std_logic_vector(BEATS * W - 1 downto 0) := (others => '0');
  signal beat    : unsigned(clog2(BEATS + 1) - 1 downto 0) := (others => '0');
  signal ovalid  : std_logic := '0';
  signal olast   : std_logic := '0';
  signal odata   : std_logic_vector(N_IN - 1 downto 0) := (others => '0');
  signal ready   : std_logic;
  signal final   : std_logic;
begin
  final <= '1' when beat = BEATS - 1 else '0';
  -- the step's last beat waits until the output register is free
  ready <= '1' when final = '0' or ovalid = '0' else '0';
  s_tready <= ready;
  out_valid <= ovalid;
  out_data <= odata;
  out_last <= olast;

  process (clk)
    variable shifted : std_logic_vector(BEATS * W - 1 downto 0);
  begin
    if rising_edge(clk) then
      if rst = '1' then
        beat <= (others => '0');
        ovalid <= '0';
        olast <= '0';
      else
        if ovalid = '1' and out_ready = '1' then
          ovalid <= '0';
        end if;
        if s_tvalid = '1' and ready = '1' then
          -- beats enter at the top and move down: after BEATS of them beat 0 is at the bottom
          if BEATS > 1 then
            shifted := s_tdata & gather(BEATS * W - 1 downto W);
          else
            shifted := s_tdata;
          end if;
          gather <= shifted;
          if final = '1' then
            odata <= shifted(N_IN - 1 downto 0);
            olast <= s_tlast;
            ovalid <= '1';
            beat <= (others => '0');
          else
            beat <= beat + 1;
          end if;
        end if;
      end if;
    end if;
  end process;
end architecture;
