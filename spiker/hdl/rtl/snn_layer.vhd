-- snn_layer: one fully connected layer of spiking neurons, event-driven.
--
-- One token per time step arrives on in_* (spike vector, `last` on a sample's last
-- step) with a valid/ready handshake and leaves on out_* (the layer's spikes).
-- The cycle a token is accepted already issues the ROM address(es) of its first
-- EVENTS_PER_CYCLE present spikes; each SCAN cycle adds the previously read row(s)
-- into the N_OUT accumulators and issues the next present spike(s); the UPD cycle
-- adds the last row(s) and applies leak, reset, saturation and the threshold test to
-- all neurons in parallel while it accepts the next token. With EVENTS_PER_CYCLE = 2
-- the scan takes the lowest and the highest remaining spike each cycle and the weight
-- ROM is read through two ports of the same constant (a true dual-port block RAM);
-- both rows enter the accumulators in the same cycle (an exact sum in ACC bits, so the
-- pairing cannot change a result). A step with a present spikes occupies
-- max(ceil(a / EVENTS_PER_CYCLE), 1) cycles when the next token is waiting (one more
-- from idle). After a `last` token the state restarts at zero.
library ieee;
use ieee.std_logic_1164.all;
use ieee.numeric_std.all;
use work.spiker_pkg.all;

entity snn_layer is
  generic (
    N_IN        : positive;
    N_OUT       : positive;
    WB          : positive;              -- weights_bw
    NB          : positive;              -- neurons_bw
    ACC         : positive;              -- accumulator width (golden accumulator_bits)
    MODEL       : natural := MODEL_LIF;
    RESET       : natural := RESET_SUBTRACT;
    BETA_SHIFT  : integer := NO_LEAK;
    ALPHA_SHIFT : integer := NO_LEAK;
    THRESHOLD   : natural;
    WEIGHTS     : integer_vector;        -- WEIGHTS(i*N_OUT + j): input i -> neuron j
    BANK_BITS   : positive := 64;
    EVENTS_PER_CYCLE : positive range 1 to 2 := 2  -- present input spikes visited per cycle
  );
  port (
    clk       : in  std_logic;
    rst       : in  std_logic;           -- synchronous, active high
    in_valid  : in  std_logic;
    in_ready  : out std_logic;
    in_spikes : in  std_logic_vector(N_IN - 1 downto 0);
    in_last   : in  std_logic;
    out_valid : out std_logic;
    out_ready : in  std_logic;
    out_spikes: out std_logic_vector(N_OUT - 1 downto 0);
    out_last  : out std_logic;
    -- observation (simulation trace; leave open in a design)
    dbg_upd   : out std_logic;           -- '1' for one cycle when dbg_v/dbg_s/out_spikes are new
    dbg_v     : out std_logic_vector(N_OUT * NB - 1 downto 0);
    dbg_s     : out std_logic_vector(N_OUT * NB - 1 downto 0)
  );
end entity;

architecture rtl of snn_layer is
  constant AW : positive := clog2(N_IN);
  constant ST_IDLE : std_logic_vector(1 downto 0) := "00";
  constant ST_SCAN : std_logic_vector(1 downto 0) := "01";
  constant ST_UPD  : std_logic_vector(1 downto 0) := "10";

  type acc_array is array (0 to N_OUT - 1) of signed(ACC - 1 downto 0);
  type nb_array is array (0 to N_OUT - 1) of signed(NB - 1 downto 0);

  signal state   : std_logic_vector(1 downto 0) := ST_IDLE;
  signal mask    : std_logic_vector(N_IN - 1 downto 0) := (others => '0');
  signal last_r  : std_logic := '0';
  signal pend    : std_logic := '0';       -- rom row of `addr` still to be added
  signal pend2   : std_logic := '0';       -- rom row of `addr2` still to be added
  signal addr    : unsigned(AW - 1 downto 0) := (others => '0');
  signal addr2   : unsigned(AW - 1 downto 0) := (others => '0');
  signal row     : std_logic_vector(N_OUT * WB - 1 downto 0);
  signal row2    : std_logic_vector(N_OUT * WB - 1 downto 0);
  signal accs    : acc_array := (others => (others => '0'));
  signal v, s    : nb_array := (others => (others => '0'));
  signal spk     : std_logic_vector(N_OUT - 1 downto 0) := (others => '0');
  signal fresh   : std_logic := '1';       -- next update starts a sample: state is zero
  signal ovalid  : std_logic := '0';
  signal olast   : std_logic := '0';
  signal upd_r   : std_logic := '0';

  signal out_free, upd_go, rdy, accept : std_logic;
  signal scan_src, scan_rest : std_logic_vector(N_IN - 1 downto 0);
  signal scan_found, scan_found2, scan_last : std_logic;
  signal scan_idx, scan_idx2 : unsigned(AW - 1 downto 0);

  -- row word j of a ROM row, sign-extended to the accumulator width
  function weight(r : std_logic_vector; j : natural) return signed is
  begin
    return resize(signed(r((j + 1) * WB - 1 + r'low downto j * WB + r'low)), ACC);
  end function;
begin
  u_rom : entity work.weight_rom
    generic map (N_IN => N_IN, N_OUT => N_OUT, WB => WB, WEIGHTS => WEIGHTS, BANK_BITS => BANK_BITS)
    port map (addr => addr, row => row, addr2 => addr2, row2 => row2);

  out_free <= (not ovalid) or out_ready;
  upd_go <= '1' when state = ST_UPD and out_free = '1' else '0';
  rdy <= '1' when state = ST_IDLE or upd_go = '1' else '0';
  accept <= rdy and in_valid;
  in_ready <= rdy;
  scan_src <= in_spikes when accept = '1' else mask;

  u_scan : entity work.event_scan
    generic map (N_IN => N_IN, EVENTS => EVENTS_PER_CYCLE)
    port map (spikes => scan_src, found => scan_found, idx => scan_idx, found2 => scan_found2,
              idx2 => scan_idx2, rest => scan_rest, last => scan_last);

  dbg : for j in 0 to N_OUT - 1 generate
    dbg_v((j + 1) * NB - 1 downto j * NB) <= std_logic_vector(v(j));
    dbg_s((j + 1) * NB - 1 downto j * NB) <= std_logic_vector(s(j));
  end generate;

  -- The neuron update (neuron_step, the datapath of neuron_update.vhd) is evaluated in
  -- the UPD cycle only, for all neurons in parallel.
  process (clk)
    variable cur : signed(ACC - 1 downto 0);
    variable vn, sn : signed(NB - 1 downto 0);
    variable sp : std_logic;
    variable zero : signed(NB - 1 downto 0);
  begin
    if rising_edge(clk) then
      if rst = '1' then
        state <= ST_IDLE;
        pend <= '0';
        pend2 <= '0';
        fresh <= '1';
        ovalid <= '0';
        olast <= '0';
        upd_r <= '0';
        mask <= (others => '0');
        addr <= (others => '0');
        addr2 <= (others => '0');
        accs <= (others => (others => '0'));
        v <= (others => (others => '0'));
        s <= (others => (others => '0'));
        spk <= (others => '0');
        last_r <= '0';
      else
        upd_r <= '0';
        if ovalid = '1' and out_ready = '1' then
          ovalid <= '0';
        end if;

        if state = ST_SCAN then
          for j in 0 to N_OUT - 1 loop
            cur := accs(j);
            if pend = '1' then
              cur := cur + weight(row, j);
            end if;
            if pend2 = '1' then
              cur := cur + weight(row2, j);
            end if;
            accs(j) <= cur;
          end loop;
          addr <= scan_idx;
          pend <= '1';
          addr2 <= scan_idx2;
          pend2 <= scan_found2;
          mask <= scan_rest;
          if scan_last = '1' then
            state <= ST_UPD;
          end if;
        elsif upd_go = '1' then
          zero := (others => '0');
          for j in 0 to N_OUT - 1 loop
            cur := accs(j);
            if pend = '1' then
              cur := cur + weight(row, j);
            end if;
            if pend2 = '1' then
              cur := cur + weight(row2, j);
            end if;
            if fresh = '1' then
              neuron_step(zero, zero, '0', cur, NB, MODEL, RESET, BETA_SHIFT, ALPHA_SHIFT, THRESHOLD,
                          vn, sn, sp);
            else
              neuron_step(v(j), s(j), spk(j), cur, NB, MODEL, RESET, BETA_SHIFT, ALPHA_SHIFT, THRESHOLD,
                          vn, sn, sp);
            end if;
            v(j) <= vn;
            s(j) <= sn;
            spk(j) <= sp;
          end loop;
          fresh <= last_r;
          ovalid <= '1';
          olast <= last_r;
          upd_r <= '1';
          pend <= '0';
          pend2 <= '0';
          state <= ST_IDLE;
        end if;

        if accept = '1' then
          last_r <= in_last;
          accs <= (others => (others => '0'));
          mask <= scan_rest;
          addr2 <= scan_idx2;
          pend2 <= scan_found2;
          if scan_found = '1' then
            addr <= scan_idx;
            pend <= '1';
            if scan_last = '1' then
              state <= ST_UPD;
            else
              state <= ST_SCAN;
            end if;
          else
            pend <= '0';
            state <= ST_UPD;
          end if;
        end if;
      end if;
    end if;
  end process;

  out_valid <= ovalid;
  out_last <= olast;
  out_spikes <= spk;
  dbg_upd <= upd_r;
end architecture;
