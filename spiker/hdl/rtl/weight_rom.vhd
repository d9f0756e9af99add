-- weight_rom: one layer's weights as an inferred synchronous ROM (no vendor primitive).
-- Word `addr` is the row of weights of input `addr` for all N_OUT neurons, neuron j in
-- bits (j+1)*WB-1 downto j*WB. WEIGHTS(i*N_OUT + j) is the weight from input i to neuron j.
-- The read is registered: `row` shows word `addr` of the previous rising edge (a block
-- RAM's read; yosys maps the memory to RAMB18/RAMB36 or ECP5 DP16KD, or to LUTs when it
-- is small, see spiker.hdl.resources). PORTS = 2 adds a second read port (addr2/row2) on
-- the SAME memory, a true dual-port block RAM used as a ROM. The row is split into banks
-- of at most BANK_BITS bits (one memory each, keeping literal constants short).
-- Each bank is an initialised variable of the one clocked process reading it: GHDL then
-- emits one Verilog memory with both read ports (a constant would be duplicated per port),
-- the same as for an initialised signal, which GHDL simulates as one signal per bit
-- (P3: 600k signals to create, and a word read gathers WB * neurons of them).
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity weight_rom is
  generic (
    N_IN      : positive;
    N_OUT     : positive;
    WB        : positive;
    WEIGHTS   : integer_vector;
    BANK_BITS : positive := 64;
    PORTS     : positive range 1 to 2 := 2
  );
  port (
    clk   : in  std_logic;
    addr  : in  unsigned(clog2(N_IN) - 1 downto 0);
    row   : out std_logic_vector(N_OUT * WB - 1 downto 0);
    addr2 : in  unsigned(clog2(N_IN) - 1 downto 0) := (others => '0');
    row2  : out std_logic_vector(N_OUT * WB - 1 downto 0)
  );
end entity;

architecture rtl of weight_rom is
  constant PER_BANK : positive := maximum(1, BANK_BITS / WB);
  constant N_BANKS  : positive := (N_OUT + PER_BANK - 1) / PER_BANK;
  constant DEPTH    : positive := 2 ** clog2(N_IN);  -- words beyond N_IN read as zero
  -- to_integer(a) written as a loop over the bits: the same wiring in synthesis, ~10x less
  -- GHDL time than numeric_std's
  function index(a : unsigned) return natural is
    variable r : natural := 0;
  begin
    for b in a'range loop
      if a(b) = '1' then
        r := 2 * r + 1;
      else
        r := 2 * r;
      end if;
    end loop;
    return r;
  end function;
begin
  banks : for b in 0 to N_BANKS - 1 generate
    constant FIRST : natural := b * PER_BANK;
    constant COUNT : positive := minimum(PER_BANK, N_OUT - FIRST);
    type rom_t is array (DEPTH - 1 downto 0) of std_logic_vector(COUNT * WB - 1 downto 0);
    function contents return rom_t is
      variable r : rom_t := (others => (others => '0'));
    begin
      for i in 0 to N_IN - 1 loop
        for j in 0 to COUNT - 1 loop
          r(i)((j + 1) * WB - 1 downto j * WB) :=
            std_logic_vector(to_signed(WEIGHTS(WEIGHTS'low + i * N_OUT + FIRST + j), WB));
        end loop;
      end loop;
      return r;
    end function;
  begin
    two : if PORTS = 2 generate
      process (clk)
        variable mem : rom_t := contents;
      begin
        if rising_edge(clk) then
          row((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= mem(index(addr));
          row2((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= mem(index(addr2));
        end if;
      end process;
    end generate;
    single : if PORTS = 1 generate
      process (clk)
        variable mem : rom_t := contents;
      begin
        if rising_edge(clk) then
          row((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= mem(index(addr));
        end if;
      end process;
    end generate;
  end generate;
  one : if PORTS = 1 generate
    row2 <= (others => '0');
  end generate;
end architecture;
