-- snn_layer_tm_mem: the memories of the time-multiplexed layer (snn_layer_tm), written so
-- that synthesis infers them (no vendor primitive), both with a synchronous read:
--   snn_layer_tm_rom  the weights, one word = the weights of one group of P neurons from one
--                     input: word i*NG + g holds neuron g*P + j in bits (j+1)*WB-1 downto j*WB
--                     (zero for the padding neurons g*P + j >= N_OUT of a partial last group);
--                     split into banks of at most BANK_BITS bits; a second read port (EVENTS
--                     = 2) reads the same contents (a true dual-port block RAM used as a ROM).
--   snn_layer_tm_ram  a simple dual-port RAM (one write port, one read port, read-first):
--                     membrane / synapse / spike state per neuron group, the step's event list.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity snn_layer_tm_rom is
  generic (
    N_IN      : positive;
    N_OUT     : positive;
    P         : positive;              -- neurons per word (NEURONS_PER_CYCLE)
    WB        : positive;
    WEIGHTS   : integer_vector;        -- WEIGHTS(i*N_OUT + n): input i -> neuron n
    BANK_BITS : positive := 64;
    EVENTS    : positive range 1 to 2 := 2
  );
  port (
    clk   : in  std_logic;
    addr  : in  unsigned(clog2(N_IN * ((N_OUT + P - 1) / P)) - 1 downto 0);
    row   : out std_logic_vector(P * WB - 1 downto 0);
    addr2 : in  unsigned(clog2(N_IN * ((N_OUT + P - 1) / P)) - 1 downto 0) := (others => '0');
    row2  : out std_logic_vector(P * WB - 1 downto 0)
  );
end entity;

architecture rtl of snn_layer_tm_rom is
  constant NG        : positive := (N_OUT + P - 1) / P;
  constant DEPTH    : positive := N_IN * NG;
  constant PER_BANK : positive := maximum(1, BANK_BITS / WB);
  constant N_BANKS  : positive := (P + PER_BANK - 1) / PER_BANK;
begin
  banks : for b in 0 to N_BANKS - 1 generate
    constant FIRST : natural := b * PER_BANK;
    constant COUNT : positive := minimum(PER_BANK, P - FIRST);
    subtype word_t is std_logic_vector(COUNT * WB - 1 downto 0);
    type rom_u is array (natural range <>) of word_t;
    subtype rom_t is rom_u(0 to DEPTH - 1);
    -- words lo .. hi, built in halves: a function-local array of a big ROM would exceed GHDL's
    -- stack limit for declarations (--max-stack-alloc, 128 KB), while results are not limited
    function leaf(lo, hi : natural) return rom_u is
      variable r : rom_u(lo to hi);
      variable n, i, g : natural;
    begin
      for a in lo to hi loop
        i := a / NG;
        g := a mod NG;
        for j in 0 to COUNT - 1 loop
          n := g * P + FIRST + j;
          if n < N_OUT then
            r(a)((j + 1) * WB - 1 downto j * WB) :=
              std_logic_vector(to_signed(WEIGHTS(WEIGHTS'low + i * N_OUT + n), WB));
          else
            r(a)((j + 1) * WB - 1 downto j * WB) := (others => '0');
          end if;
        end loop;
      end loop;
      return r;
    end function;
    function contents(lo, hi : natural) return rom_u is
    begin
      if hi - lo >= 256 then
        return contents(lo, (lo + hi) / 2) & contents((lo + hi) / 2 + 1, hi);
      end if;
      return leaf(lo, hi);
    end function;
    constant ROM : rom_t := contents(0, DEPTH - 1);
    signal q, q2 : std_logic_vector(COUNT * WB - 1 downto 0) := (others => '0');
  begin
    process (clk)
    begin
      if rising_edge(clk) then
        if to_integer(addr) < DEPTH then
          q <= ROM(to_integer(addr));
        end if;
      end if;
    end process;
    row((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= q;

    two : if EVENTS = 2 generate
      process (clk)
      begin
        if rising_edge(clk) then
          if to_integer(addr2) < DEPTH then
            q2 <= ROM(to_integer(addr2));
          end if;
        end if;
      end process;
    end generate;
    row2((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= q2;
  end generate;
end architecture;

library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity snn_layer_tm_ram is
  generic (
    DEPTH : positive;
    WIDTH : positive
  );
  port (
    clk   : in  std_logic;
    we    : in  std_logic;
    waddr : in  unsigned(clog2(DEPTH) - 1 downto 0);
    wdata : in  std_logic_vector(WIDTH - 1 downto 0);
    raddr : in  unsigned(clog2(DEPTH) - 1 downto 0);
    rdata : out std_logic_vector(WIDTH - 1 downto 0)
  );
end entity;

architecture rtl of snn_layer_tm_ram is
  type ram_t is array (0 to DEPTH - 1) of std_logic_vector(WIDTH - 1 downto 0);
  signal q : std_logic_vector(WIDTH - 1 downto 0) := (others => '0');
begin
  -- the memory is a process variable: a signal array this deep makes GHDL's simulation
  -- allocate a temporary of the whole array per write (over GHDL's stack limit)
  process (clk)
    variable mem : ram_t := (others => (others => '0'));
  begin
    if rising_edge(clk) then
      if to_integer(raddr) < DEPTH then
        q <= mem(to_integer(raddr));        -- read first: the word before this cycle's write
      end if;
      if we = '1' and to_integer(waddr) < DEPTH then
        mem(to_integer(waddr)) := wdata;
      end if;
    end if;
  end process;
  rdata <= q;
end architecture;
