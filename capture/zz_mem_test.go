package capture_test
import ("testing";"os";"bytes";"math/rand/v2";"runtime";"errors";"io";"time"
 "github.com/netssm/netssm/capture";"github.com/netssm/netssm/capture/capturetest")
func TestZZMem(t *testing.T){
 var seeds [][]byte
 for _,p:=range capturetest.ProjectCaptures(t){b,_:=os.ReadFile(p); if len(b)>4096{b=b[:4096]}; seeds=append(seeds,b)}
 rng:=rand.New(rand.NewPCG(1,1))
 var ms runtime.MemStats; maxHeap:=uint64(0); worst:=[]byte(nil)
 for it:=0; it<3000; it++{
  d:=append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
  for k:=0;k<1+rng.IntN(8);k++{ i:=rng.IntN(len(d)); d[i]=byte(rng.Uint32()) ; if rng.IntN(4)==0 {d[i]=0xff}}
  before:=time.Now()
  r,err:=capture.NewReader("x",bytes.NewReader(d)); if err==nil { for n:=0;n<1000;n++{ _,err:=r.Next(); if errors.Is(err,io.EOF)||err!=nil{break}} }
  if time.Since(before)>200*time.Millisecond { t.Logf("slow input %d: %v", it, time.Since(before)); os.WriteFile("/tmp/slow.bin", d, 0644); return }
  if it%2000==0 { runtime.ReadMemStats(&ms); if ms.HeapSys>maxHeap {maxHeap=ms.HeapSys; t.Logf("it %d heapsys %d MB", it, ms.HeapSys>>20); worst=d} }
 }
 os.WriteFile("/tmp/worst.bin", worst, 0644)
}
