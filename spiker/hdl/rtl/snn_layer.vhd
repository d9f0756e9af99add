-- snn_layer: one fully connected layer of spiking neurons, event-driven, fully parallel.
--
-- One token per time step arrives on in_* (spike vector, `last` on a sample's last
-- step) with a valid/ready handshake and leaves on out_* (the layer's spikes).
-- Three stages:
--   input register: an accepted token is stored in `mask`; in_ready is a register
--     (not tok), so ready never travels combinationally from layer to layer.
--   issue: each cycle the event scan takes EVENTS_PER_CYCLE present spikes of `mask`
--     (lowest, and highest with 2), their addresses go straight into the synchronous
--     weight ROM (a block RAM's address register) and the picked bits are cleared; the
--     step's last pick (or an empty step) carries an end mark.
--   neurons: neuron_unit, N_OUT neurons each with one register and one adder (two
--     with 2 events a cycle): an event cycle adds the ROM row(s) read in the previous
--     cycle, then UPDATE_PHASES cycles apply saturation, threshold, leak and reset
--     (neuron_unit). While they run, the next token is loaded and its first events are
--     issued, so the next step's rows arrive when the neurons are free again.
-- A step with a present spikes occupies max(ceil(a / EVENTS_PER_CYCLE), 1) + U cycles
-- while tokens keep coming (U = 2 for lif/if, 3 for syn). The update waits (first
-- phase) until the output register is free. After a `last` token the state restarts at
-- zero. The port list is the one every layer entity of the library shares.
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
    EVENTS_PER_CYCLE : positive range 1 to 2 := 2;  -- present input spikes visited per cycle
    -- inputs the event scan looks at in one cycle (a power of 2; 0: all inputs up to 128,
    -- else windows of 64): a wide layer scans its mask window by window
    SCAN_WINDOW : natural := 0
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
  function window_width return positive is
  begin
    if SCAN_WINDOW > 0 then
      return minimum(SCAN_WINDOW, 2 ** AW);
    elsif N_IN <= 128 then
      return N_IN;
    end if;
    return 64;
  end function;
  constant WW : positive := window_width;                 -- window width
  constant NW : positive := (N_IN + WW - 1) / WW;         -- windows
  constant WAW : positive := clog2(WW);                   -- index bits within a window
  constant NU : positive := update_phases(MODEL);
  function spike_phase return positive is
  begin
    if MODEL = MODEL_SYN then
      return 2;
    end if;
    return 1;
  end function;
  constant PA : positive := spike_phase;

  -- input register and issue stage
  signal mask   : std_logic_vector(N_IN - 1 downto 0) := (others => '0');
  signal tok    : std_logic := '0';        -- mask holds a token whose events are not all issued
  signal tlast  : std_logic := '0';
  signal p_add1, p_add2, p_end, p_last : std_logic := '0';  -- micro-op of the ROM row(s) now read
  signal issue  : std_logic;
  signal scan_found, scan_found2, scan_last : std_logic;
  signal scan_idx, scan_idx2 : unsigned(AW - 1 downto 0);
  signal scan_rest : std_logic_vector(N_IN - 1 downto 0);
  -- windowed scan (NW > 1): the window `win` of the mask, its picks and what is left of it
  signal win : natural range 0 to NW - 1 := 0;
  signal wvec, wrest : std_logic_vector(WW - 1 downto 0);
  signal widx, widx2 : unsigned(WAW - 1 downto 0);
  signal wfound, wfound2, wlast : std_logic;
  signal row, row2 : std_logic_vector(N_OUT * WB - 1 downto 0);

  -- neurons
  signal uph    : natural range 0 to 3 := 0;   -- 0: events, k: update phase k
  signal cur_last, fresh : std_logic := '0';
  signal ovalid, olast, upd_r : std_logic := '0';
  signal out_free, go : std_logic;
  signal u : std_logic_vector(1 to 3);
  signal add1, add2 : std_logic;
  signal spk : std_logic_vector(N_OUT - 1 downto 0);
begin
  in_ready <= not tok;

  whole : if NW = 1 generate
    u_scan : entity work.event_scan
      generic map (N_IN => N_IN, EVENTS => EVENTS_PER_CYCLE)
      port map (spikes => mask, found => scan_found, idx => scan_idx, found2 => scan_found2,
                idx2 => scan_idx2, rest => scan_rest, last => scan_last);
  end generate;

  -- a wide layer: the scan picks from one window a cycle (an empty window costs a cycle),
  -- the address is window & index (WW is a power of 2), the step ends with the last window
  windowed : if NW > 1 generate
    process (mask, win)
      variable v : std_logic_vector(WW - 1 downto 0);
    begin
      v := (others => '0');
      for w in 0 to NW - 1 loop
        if win = w then
          for i in 0 to WW - 1 loop
            if w * WW + i < N_IN then
              v(i) := mask(w * WW + i);
            end if;
          end loop;
        end if;
      end loop;
      wvec <= v;
    end process;

    u_scan : entity work.event_scan
      generic map (N_IN => WW, EVENTS => EVENTS_PER_CYCLE)
      port map (spikes => wvec, found => wfound, idx => widx, found2 => wfound2,
                idx2 => widx2, rest => wrest, last => wlast);

    process (mask, win, wrest)
      variable r : std_logic_vector(N_IN - 1 downto 0);
    begin
      r := mask;
      for w in 0 to NW - 1 loop
        if win = w then
          for i in 0 to WW - 1 loop
            if w * WW + i < N_IN then
              r(w * WW + i) := wrest(i);
            end if;
          end loop;
        end if;
      end loop;
      scan_rest <= r;
    end process;

    scan_idx <= resize(to_unsigned(win, AW - WAW) & widx, AW);
    scan_idx2 <= resize(to_unsigned(win, AW - WAW) & widx2, AW);
    scan_found <= wfound;
    scan_found2 <= wfound2;
    scan_last <= wlast when win = NW - 1 else '0';
  end generate;

  u_rom : entity work.weight_rom
    generic map (N_IN => N_IN, N_OUT => N_OUT, WB => WB, WEIGHTS => WEIGHTS, BANK_BITS => BANK_BITS,
                 PORTS => EVENTS_PER_CYCLE)
    port map (clk => clk, addr => scan_idx, row => row, addr2 => scan_idx2, row2 => row2);

  -- issue when the neurons take events in the next cycle
  issue <= '1' when tok = '1' and ((uph = 0 and p_end = '0') or uph = NU) else '0';
  out_free <= (not ovalid) or out_ready;
  go <= '1' when uph /= 1 or out_free = '1' else '0';
  add1 <= p_add1 when uph = 0 else '0';
  add2 <= p_add2 when uph = 0 else '0';
  u(1) <= '1' when uph = 1 and out_free = '1' else '0';
  u(2) <= '1' when uph = 2 else '0';
  u(3) <= '1' when uph = 3 else '0';

  u_neurons : entity work.neuron_unit
    generic map (N => N_OUT, NB => NB, ACC => ACC, WB => WB, MODEL => MODEL, RESET => RESET,
                 BETA_SHIFT => BETA_SHIFT, ALPHA_SHIFT => ALPHA_SHIFT, THRESHOLD => THRESHOLD,
                 EVENTS => EVENTS_PER_CYCLE)
    port map (clk => clk, rst => rst, add1 => add1, add2 => add2, w1 => row, w2 => row2,
              u => u, clear => cur_last, fresh => fresh, spike => spk, v_dbg => dbg_v, s_dbg => dbg_s);

  process (clk)
  begin
    if rising_edge(clk) then
      if rst = '1' then
        mask <= (others => '0');
        tok <= '0';
        tlast <= '0';
        p_add1 <= '0';
        p_add2 <= '0';
        p_end <= '0';
        p_last <= '0';
        uph <= 0;
        win <= 0;
        cur_last <= '0';
        fresh <= '1';
        ovalid <= '0';
        olast <= '0';
        upd_r <= '0';
      else
        upd_r <= '0';
        if ovalid = '1' and out_ready = '1' then
          ovalid <= '0';
        end if;

        -- input register
        if tok = '0' and in_valid = '1' then
          mask <= in_spikes;
          tok <= '1';
          tlast <= in_last;
        end if;

        -- issue stage
        p_add1 <= '0';
        p_add2 <= '0';
        p_end <= '0';
        if issue = '1' then
          p_add1 <= scan_found;
          p_add2 <= scan_found2;
          p_end <= scan_last;
          p_last <= tlast;
          mask <= scan_rest;
          if scan_last = '1' then
            tok <= '0';
          end if;
          if NW > 1 and wlast = '1' then  -- this window is done: the next one (0 after the last)
            if win = NW - 1 then
              win <= 0;
            else
              win <= win + 1;
            end if;
          end if;
        end if;

        -- neuron phases
        if uph = 0 then
          if p_end = '1' then
            uph <= 1;
            cur_last <= p_last;
          end if;
        elsif go = '1' then
          if uph = PA then
            ovalid <= '1';
            olast <= cur_last;
            upd_r <= '1';
          end if;
          if uph = NU then
            uph <= 0;
            fresh <= cur_last;
          else
            uph <= uph + 1;
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
