`timescale 1ns/1ps
module spiker_vtb;
  // one run streams the samples of beats.mem back to back; one output word per line of out.txt
  localparam N = {n_in}, W = {tdata}, MAX_BEATS = {max_beats};
  reg clk = 0, rst = 1;
  always #5 clk = ~clk;
  reg [N:0] mem [0:MAX_BEATS-1];
  integer k = 0, outs = 0, cyc = 0, beats = 0, samples = 0, max_cycles = 0, f;
  wire s_tready, m_tvalid, m_tlast;
  wire [W-1:0] m_tdata;
  wire [N:0] beat = (k < beats) ? mem[k] : 0;
  wire s_tvalid = !rst && (k < beats);
  {top} dut ({ports});
  initial begin
    if (!$value$plusargs("beats=%d", beats) || !$value$plusargs("samples=%d", samples)
        || !$value$plusargs("max_cycles=%d", max_cycles)) begin
      $display("spiker_vtb: need +beats=, +samples= and +max_cycles="); $finish;
    end
    $readmemb("beats.mem", mem, 0, beats - 1);
    f = $fopen("out.txt", "w");
    repeat (3) @(posedge clk);
    rst <= 0;
  end
  always @(posedge clk) begin
    cyc <= cyc + 1;
    if (!rst) begin
      if (s_tvalid && s_tready) k <= k + 1;
      if (m_tvalid) begin
        $fwrite(f, "%h\n", m_tdata);
        $fflush(f);
        outs = outs + 1;
        if (outs == samples) begin
          $display("spiker_vtb: %0d cycles", cyc + 1); $fclose(f); $finish;
        end
      end
    end
    if (cyc > max_cycles) begin $fwrite(f, "TIMEOUT\n"); $fclose(f); $finish; end
  end
endmodule
