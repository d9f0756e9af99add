-- spike_readout: output spike counters and the predicted class.
-- Counts each class's spikes over a sample's steps (tokens from the last layer);
-- on the `last` token it latches the counts, then finds the class with the most
-- spikes (ties and an all-zero count go to the lowest index), one class a cycle
-- (max(N_CLS - 1, 1) cycles: a short path instead of an N_CLS-deep compare chain),
-- and presents both on m_* until m_ready. Counters saturate at 2**CB - 1.
-- The readout takes no token while it finds or presents a result, so the counters themselves
-- hold the counts presented (no second set of count registers) and the next sample's first
-- token counts from zero (`fresh`); the class register is the running maximum's index.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity spike_readout is
  generic (
    N_CLS : positive;
    CB    : positive                     -- count bits
  );
  port (
    clk      : in  std_logic;
    rst      : in  std_logic;
    in_valid : in  std_logic;
    in_ready : out std_logic;
    in_spikes: in  std_logic_vector(N_CLS - 1 downto 0);
    in_last  : in  std_logic;
    m_valid  : out std_logic;
    m_ready  : in  std_logic;
    m_counts : out std_logic_vector(N_CLS * CB - 1 downto 0);
    m_class  : out unsigned(clog2(N_CLS) - 1 downto 0)
  );
end entity;

architecture rtl of spike_readout is
  type cnt_array is array (0 to N_CLS - 1) of unsigned(CB - 1 downto 0);
  constant CMAX : unsigned(CB - 1 downto 0) := (others => '1');
  signal cnt : cnt_array := (others => (others => '0'));
  signal pend, mv : std_logic := '0';
  signal fresh : std_logic := '1';                                -- the next token starts a sample
  signal best : unsigned(CB - 1 downto 0) := (others => '0');  -- running maximum
  signal bidx : natural range 0 to N_CLS - 1 := 0;                -- its class
  signal i : natural range 0 to N_CLS := 0;                       -- next class to compare
  signal rdy : std_logic;
begin
  rdy <= not (pend or mv);
  in_ready <= rdy;

  process (clk)
    variable nxt : cnt_array;
    variable k : natural range 0 to N_CLS - 1;
  begin
    if rising_edge(clk) then
      if rst = '1' then
        cnt <= (others => (others => '0'));
        pend <= '0';
        mv <= '0';
        fresh <= '1';
        bidx <= 0;
      else
        if mv = '1' and m_ready = '1' then
          mv <= '0';
        end if;
        if pend = '1' then
          k := bidx;
          if i < N_CLS then
            if cnt(i) > best then
              best <= cnt(i);
              k := i;
            end if;
            bidx <= k;
            i <= i + 1;
          end if;
          if i >= N_CLS - 1 then
            pend <= '0';
            mv <= '1';
          end if;
        end if;
        if in_valid = '1' and rdy = '1' then
          for i in 0 to N_CLS - 1 loop
            nxt(i) := cnt(i);
            if fresh = '1' then
              nxt(i) := (others => '0');
            end if;
            if in_spikes(i) = '1' and nxt(i) /= CMAX then
              nxt(i) := nxt(i) + 1;
            end if;
          end loop;
          cnt <= nxt;
          fresh <= in_last;
          if in_last = '1' then
            pend <= '1';
            best <= nxt(0);
            bidx <= 0;
            i <= 1;
          end if;
        end if;
      end if;
    end if;
  end process;

  outs : for i in 0 to N_CLS - 1 generate
    m_counts((i + 1) * CB - 1 downto i * CB) <= std_logic_vector(cnt(i));
  end generate;
  m_class <= to_unsigned(bidx, m_class'length);
  m_valid <= mv;
end architecture;
