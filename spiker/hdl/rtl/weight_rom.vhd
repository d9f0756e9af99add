-- weight_rom: one layer's weights as an inferred ROM (a constant array, no vendor primitive).
-- Word `addr` is the row of weights of input `addr` for all N_OUT neurons, neuron j in
-- bits (j+1)*WB-1 downto j*WB. WEIGHTS(i*N_OUT + j) is the weight from input i to neuron j.
-- The row is split into banks of at most BANK_BITS bits (narrow words keep synthesis
-- tools' literal constants short). The read is combinational from the caller's
-- address register, i.e. a synchronous ROM with a registered address (BRAM-friendly).
-- A second read port (addr2/row2) reads the SAME constant, like a true dual-port block
-- RAM used as a ROM; leave it unconnected (row2 open) and synthesis removes it.
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
    BANK_BITS : positive := 64
  );
  port (
    addr  : in  unsigned(clog2(N_IN) - 1 downto 0);
    row   : out std_logic_vector(N_OUT * WB - 1 downto 0);
    addr2 : in  unsigned(clog2(N_IN) - 1 downto 0) := (others => '0');
    row2  : out std_logic_vector(N_OUT * WB - 1 downto 0)
  );
end entity;

architecture rtl of weight_rom is
  constant PER_BANK : positive := maximum(1, BANK_BITS / WB);
  constant N_BANKS  : positive := (N_OUT + PER_BANK - 1) / PER_BANK;
begin
  banks : for b in 0 to N_BANKS - 1 generate
    constant FIRST : natural := b * PER_BANK;
    constant COUNT : positive := minimum(PER_BANK, N_OUT - FIRST);
    type rom_t is array (0 to N_IN - 1) of std_logic_vector(COUNT * WB - 1 downto 0);
    function contents return rom_t is
      variable r : rom_t;
    begin
      for i in 0 to N_IN - 1 loop
        for j in 0 to COUNT - 1 loop
          r(i)((j + 1) * WB - 1 downto j * WB) :=
            std_logic_vector(to_signed(WEIGHTS(WEIGHTS'low + i * N_OUT + FIRST + j), WB));
        end loop;
      end loop;
      return r;
    end function;
    constant ROM : rom_t := contents;
  begin
    row((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= ROM(to_integer(addr)) when to_integer(addr) < N_IN
                                                       else (others => '0');
    row2((FIRST + COUNT) * WB - 1 downto FIRST * WB) <= ROM(to_integer(addr2)) when to_integer(addr2) < N_IN
                                                        else (others => '0');
  end generate;
end architecture;
